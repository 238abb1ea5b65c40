"""The Gradio UI (`medqa ui`): a client of the Serve HTTP API like any other, so what it shows
has passed the same safety graph; it holds no model and no safety logic of its own.

May import: config, console, serving (`gate.is_loopback` only; never the app).
"""
