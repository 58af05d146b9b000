"""Analytics: data models, queries and the dashboard over the warehouse."""
