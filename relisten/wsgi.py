import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relisten.settings")
application = get_wsgi_application()

# Import every view now, then move everything loaded at start-up out of the garbage collector's
# reach: full collections of these long-lived objects were the slow tail of media range
# requests (bench/vault.py: p99 ~40 ms -> ~16 ms).
get_resolver().url_patterns  # noqa: B018
gc.collect()
gc.freeze()
