"""HTTP and websocket routing for the web process (and for ``manage.py standalone``)."""

import os
import warnings

from django.core.asgi import get_asgi_application

# Static assets are served by the app (the product works offline) through Django's FileResponse,
# which Django warns about under ASGI; they are small. Artifact downloads stream asynchronously.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "formicary_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from formicary_site.body_limits import BodyLimitMiddleware  # noqa: E402
from formicary_site.routing import websocket_urlpatterns  # noqa: E402
from formicary_site.ws_origin import SessionOnlyFromOwnOrigin  # noqa: E402

application = ProtocolTypeRouter(
    {
        # bodies over the limits are refused before Django reads them
        # (Django's stubs type the scope as a dict where ASGI says a mapping)
        "http": BodyLimitMiddleware(django_asgi_app),  # type: ignore[arg-type]
        # a foreign page's handshake is not authenticated by the session cookie (ws_origin.py)
        "websocket": AllowedHostsOriginValidator(
            SessionOnlyFromOwnOrigin(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
