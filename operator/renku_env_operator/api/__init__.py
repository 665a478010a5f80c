"""The public GlobalEnvironment API: pydantic models and the CRD generated from them."""
