"""The domain layer the API, the UI, the consumers, the services and the queen daemon share: state
changes (``transitions``), lifecycle events, parsed specs, template data (``context``), task logs,
what goes to ants (``sends``), the process's transport (``messaging``). It never imports the
daemon (``jobs.queen``); docs/architecture.md draws the layers."""
