"""Write the Jena station's years as one long Parquet table (id, time, 14 columns): configs/station_years.toml reads it.

    RNNKIT_DATA_DIR=../shared/data python examples/station_years_parquet.py [OUT.parquet]

The series are real (rnnkit.datasets.station_years): one per calendar year of the 2009-2016 record and of the
2024 and 2025 exports; nothing is generated.
"""

import sys
from pathlib import Path

from rnnkit.datasets.station_years import station_years_table, write_parquet

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/station_years.parquet")
out.parent.mkdir(parents=True, exist_ok=True)
table = station_years_table()
write_parquet(table, out)
sizes = table.groupby("id", sort=False).size()
print(f"{out}: {len(table):,} rows, {len(sizes)} series ({', '.join(f'{k}: {v:,}' for k, v in sizes.items())})")
