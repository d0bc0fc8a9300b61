"""The `swimnet-agent` command line: argument parsing (main), one function per command
(commands), the blocking control-socket client (client) and the human output (render).

Rules: the client side never imports trio or the daemon (`swimnet-agent keygen` and the
client commands start fast); `run` imports the daemon lazily. Nothing is imported here.
"""
