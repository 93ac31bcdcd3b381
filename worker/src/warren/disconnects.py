"""One line's worth of why a broker connection failed or was lost (pure logic over pika's exceptions).

pika wraps a failed connection attempt several layers deep (AMQPConnectionError -> workflow failed ->
connector phase error -> the socket's OSError), and the outer exception's str() is often empty. The
worker's WARNING line for each attempt is the only one at the default level (warren.logs.quiet_pika), so
it names the phase and the root cause itself: "TCP connect failed: Connection refused".
"""

from __future__ import annotations

import socket
import ssl

import pika.exceptions as pex
from pika.adapters.utils import connection_workflow as cw

from warren.retry import error_line


def _os_error(exc: OSError) -> str:
    return exc.strerror or error_line(exc)


def failure_reason(err: BaseException | None) -> str:
    """Why a connection attempt failed or an open connection went away, on one line."""
    if err is None:
        return "no reason given"
    # AMQPConnectionError(AMQPConnectionWorkflowFailed(...)): the wrapper says nothing of its own.
    if type(err) is pex.AMQPConnectionError and err.args and isinstance(err.args[0], BaseException):
        return failure_reason(err.args[0])
    if isinstance(err, cw.AMQPConnectionWorkflowFailed):
        return failure_reason(err.exceptions[-1] if err.exceptions else None)
    if isinstance(err, cw.AMQPConnectorSocketConnectError):
        inner = err.exception
        return f"TCP connect failed: {_os_error(inner) if isinstance(inner, OSError) else error_line(inner)}"
    if isinstance(err, cw.AMQPConnectorTransportSetupError):
        return f"TLS setup failed: {error_line(err.exception)}"
    if isinstance(err, cw.AMQPConnectorAMQPHandshakeError):
        return f"AMQP handshake failed: {failure_reason(err.exception)}"
    if isinstance(err, cw.AMQPConnectorStackTimeout):
        return "timed out before the connection was open"
    if isinstance(err, socket.gaierror):
        return f"address lookup failed: {_os_error(err)}"
    if isinstance(err, ssl.SSLError):
        return f"TLS failed: {error_line(err)}"
    if isinstance(err, pex.ConnectionClosedByBroker):
        return f"closed by the broker: {err.reply_code} {err.reply_text}"
    if isinstance(err, pex.ConnectionClosed):
        return f"closed: {err.reply_code} {err.reply_text}"
    if isinstance(err, pex.AMQPHeartbeatTimeout):
        return f"no heartbeat from the broker ({error_line(err)})"
    if isinstance(err, pex.StreamLostError):
        return f"connection lost: {str(err) or type(err).__name__}"
    if isinstance(err, OSError):
        return _os_error(err)
    return error_line(err)
