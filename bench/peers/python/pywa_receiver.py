"""pywa's webhook receiver on FastAPI, served by uvicorn (one worker):
`python pywa_receiver.py PORT APP_SECRET`. Signatures are validated (validate_updates=True) and every
update is handled (skip_duplicate_updates=False: real traffic is unique)."""
import sys

import uvicorn
from fastapi import FastAPI
from pywa import WhatsApp, types

port, app_secret = int(sys.argv[1]), sys.argv[2]
app = FastAPI()
wa = WhatsApp(
    phone_id="106540352242922",
    token="bench-token",
    server=app,
    webhook_endpoint="/webhook",
    verify_token="bench-verify",
    app_secret=app_secret,
    validate_updates=True,
    skip_duplicate_updates=False,
)
handled = 0


@wa.on_message()
def on_message(_: WhatsApp, message: types.Message) -> None:
    global handled
    handled += 1


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, workers=1)
