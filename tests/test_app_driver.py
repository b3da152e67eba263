"""The browser driver's server-log check: every traceback fails a browser test, except a client
that left while its websocket was being opened."""

import sys

from interp_core import paths

sys.path.insert(0, str(paths.PROJECT_ROOT))
from tools.app_driver import server_log_tracebacks  # noqa: E402

LEFT = ('Traceback (most recent call last):\n  File "starlette_websocket.py", line 516, in _websocket_endpoint\n'
        '    data = await websocket.receive_bytes()\n'
        'starlette.websockets.WebSocketDisconnected: WebSocket is not connected. Need to call "accept" first.\n')
FAILED = 'Traceback (most recent call last):\n  File "pages/explore.py", line 3, in <module>\nValueError: boom\n'


def test_a_client_leaving_is_not_an_app_error_but_any_other_traceback_is():
    assert server_log_tracebacks("started\n" + LEFT) == []
    found = server_log_tracebacks(LEFT + "log line\n" + FAILED)
    assert len(found) == 1 and found[0].endswith("ValueError: boom")
