"""A real task for exercising the queue; it records that it ran, with its id argument."""

from __future__ import annotations

from django_tasks import task

RAN: list[str] = []


@task()
def note_ran(item_id: str) -> None:
    RAN.append(item_id)


@task()
def note_tick() -> None:
    RAN.append("tick")
