"""Checks the quickstart's JSON Lines: the steps, in order, with the documented shapes."""
import json
import sys

lines = [json.loads(line) for line in sys.stdin if line.strip()]
steps = [line["step"] for line in lines]
expected = ["add_passwordless_registration", "send_my_passwordless_link", "delivered",
            "check", "register_passkey", "verify_passkey_registration", "register_again",
            "login", "events"]
assert steps == expected, steps
by_step = {line["step"]: line for line in lines}
added = by_step["add_passwordless_registration"]["response"]
assert added["details"]["sequence"] == "1" and added["expiration"] == "3600s", added
assert by_step["send_my_passwordless_link"]["response"]["details"]["sequence"] == "2"
message = by_step["delivered"]["message"]
assert message["recipient"] == "ada@example.com" and message["link"].startswith("https://")
started = by_step["register_passkey"]["response"]
options = started["publicKeyCredentialCreationOptions"]["publicKey"]
assert options["rp"]["id"] == "id.example.com" and started["passkeyId"], started
assert options["authenticatorSelection"]["residentKey"] == "required", options
assert "details" in by_step["verify_passkey_registration"]["response"]
error = by_step["register_again"]["error"]
assert error["code"] == 3 and error["details"][0]["message"] == "Errors.User.Code.Invalid", error
login = by_step["login"]["result"]
assert login["passkeyId"] == started["passkeyId"] and login["userId"] == message["userId"], login
assert login["details"]["resourceOwner"] == login["orgId"], login
events = by_step["events"]["events"]
types = [e["type"] for e in events]
assert "user.human.passwordless.token.verified" in types, types
assert "user.human.passwordless.token.check.succeeded" in types, types
assert all({"stream", "version", "type", "payload"} <= set(e) for e in events)
secret = message["link"].rsplit("code=", 1)[1]
assert secret not in json.dumps(events), "a secret reached the store"
print(f"quickstart: {len(lines)} steps, {len(events)} events, shapes ok")
