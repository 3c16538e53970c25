"""The web side of ants: the registry's API, serializers and selectors, the websocket-ant consumer
and its routing. The model (``ants.models``), admin and migrations stay where Django looks for
them; the worker side (everything else in ``ants``) imports nothing from here."""
