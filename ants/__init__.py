"""The ant side of Formicary: message protocol, Redis/in-process messaging, executors, worker.

Nothing in this package imports a Django model: an ant on another machine needs only Redis
(and, later, the object store).
"""
