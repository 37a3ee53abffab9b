"""Who is calling (Supabase JWTs) and what they may do (authority read from the database)."""
