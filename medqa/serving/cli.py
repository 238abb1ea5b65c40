"""Placeholder: this area's commands are registered here when it lands."""


def register(sub) -> None:
    pass
