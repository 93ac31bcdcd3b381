"""Warren: a RabbitMQ worker (consumer) and publisher for the Warren event-processing appliance."""

__version__ = "0.1.0"
