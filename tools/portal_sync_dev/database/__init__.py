"""The database's tooling: the migrations (`make migrate`), a plain PostgreSQL prepared as a
Supabase project is (supabase_project.py), and Supabase's database linter (lint.py)."""
