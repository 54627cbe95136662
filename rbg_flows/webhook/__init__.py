"""The CRD conversion webhook: a process of its own, answering the API server's ConversionReviews between
the served versions of the CRDs (v1alpha1 and v1alpha2; v1alpha2 stored).

It depends on `api/` (the conversion itself) and `observability/` (/healthz, /metrics) only: no
Kubernetes client, Temporal, workflows or activities (an import contract). `review` answers a review
(pure), `server` is its HTTP side, `tls` the serving certificate reloaded from its files, `run` the process.
"""
