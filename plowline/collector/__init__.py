"""The collector: receives tracker HTTP requests and writes each one as a raw CollectorPayload."""
