"""Developer tools of the workspace (not deployed).

- local/: `make run`'s system on this machine: the functions behind a loopback HTTP adapter,
  embedded PostgreSQL, moto's AWS server, the queue consumer and schedule, a Dataverse stand-in,
  the demo seed;
- database/: the migrations (`make migrate`), a plain PostgreSQL prepared as a Supabase project
  is, and Supabase's database linter as the project's own checks;
- bench/: `make bench` and `make bench-cold`, which write BENCHMARKS.md;
- build.py: the deployment artifacts (`make build`, and `sam build` through `build-%`);
- cli.py: the `portal-sync` command (the admin API over HTTP).
"""

from pathlib import Path

# The repository: template.yaml, functions/, infra/, BENCHMARKS.md.
ROOT = Path(__file__).resolve().parents[2]
