"""A data pipeline as a real one would be: before copying, it asks DataVisa whether the
transfer is approved now (POST /v1/transfers/check with its service token), copies only
when allowed, and exits 0 when it did, 1 when refused (printing the reasons).

Usage: transfer_pipeline.py SERVER_URL TRANSFER_ID OUT_FILE   (token in $DATAVISA_TOKEN)
Only the standard library: a pipeline should not need DataVisa installed to ask it.
"""

import json
import os
import sys
import urllib.request


def main() -> int:
    server, transfer_id, out = sys.argv[1:4]
    asked = urllib.request.Request(
        f"{server}/v1/transfers/check",
        data=json.dumps({"transfer_id": transfer_id}).encode(),
        headers={
            "Authorization": f"Bearer {os.environ['DATAVISA_TOKEN']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(asked, timeout=10) as response:
        decision = json.load(response)
    if not decision["allow"]:
        for reason in decision["reasons"]:
            print(f"refused: {reason['code']}: {reason['message']}")
        return 1
    with open(out, "a") as copy:  # the copy job itself
        copy.write(f"copied under {decision['transfer_id']} until {decision['expires_at']}\n")
    print(f"copied under transfer {decision['transfer_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
