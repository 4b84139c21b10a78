"""A real SMTP sink for the e-mail tests (aiosmtpd): accepts every message
on 127.0.0.1:PORT and writes each as DIR/<n>.eml (envelope recipients on
the first line). Usage: smtp_sink.py PORT DIR. Runs until killed."""
import asyncio
import os
import sys

from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)


class Save:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        Save.count += 1
        path = os.path.join(out, f"{Save.count}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(("RCPT " + ",".join(envelope.rcpt_tos) + "\n").encode())
            f.write(envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"


controller = Controller(Save(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
asyncio.get_event_loop().run_forever()
