"""`hubbub doctor`: checks a running deployment from the outside and says what is wrong in plain
words, with the fix (docs/operations.md, "hubbub doctor").

`node_facts` is the node's side (`GET /api/v4/hubbub/doctor`); `probes` talk to the proxy and
the nodes (HTTP, a raw websocket); `checks` turn what was observed into findings (pure, unit
tested); `command` is the CLI that runs them and prints the report.
"""
