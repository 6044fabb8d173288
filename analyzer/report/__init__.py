"""Reports: console tables, JSON, HTML with plotly figures, Parquet."""
