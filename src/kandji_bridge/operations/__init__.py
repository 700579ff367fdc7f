"""What a user can do, one function each.

The CLI (`cli/`), the web pages and the REST API (`web/`) and the scheduler (`service/`) call these
functions and do nothing else of their own: a front end parses its input, calls one operation and
renders what it returns. An operation takes what it works on as arguments (the `Settings`, the
state DB, the log store, the job runner), raises a `BridgeError` with one sentence when the user
can fix something, and never prints, renders or builds an HTTP response.
"""
