from __future__ import annotations

from django import template

from relisten.audit.labels import event_label, target_label

register = template.Library()
register.filter("event_label", event_label)
register.filter("target_label", target_label)
