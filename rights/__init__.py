"""Rights checker: OpenFisca-France estimates of French social benefits from the chat's answers.

Public interface: `rights.answers.Answers` (what the flow collects) and
`rights.estimator.RightsEstimator` (async, batched, loads OpenFisca off the request path).
Importing this package does not import OpenFisca.
"""
