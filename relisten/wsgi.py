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
# A page such as a 50-minute session's workspace allocates a few hundred thousand objects;
# at the default threshold (700) that is hundreds of young-generation collections per page.
# Collecting every 50,000 allocations instead cut its server time by ~3 ms at the median and
# ~6 ms at the 90th percentile (bench/pages.py), for a few MB more of short-lived garbage.
gc.set_threshold(50_000, 20, 20)
