"""Analytics tests: queries over the warehouse and their output formats."""
