"""Placeholder until the safety commands land."""


def register(sub) -> None:
    pass
