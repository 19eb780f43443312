"""The payer-facing REST API (Django REST framework): thin views over the services."""
