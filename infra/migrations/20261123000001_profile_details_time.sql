-- migrate:up

-- Profile details (names, e-mail, phone) come from the contact table and memberships from their
-- own table, each with its own `modifiedon`: ordering them by one clock would let a contact edit
-- make an earlier-stamped role change look stale, or the reverse. The details keep their own time.
alter table profiles add column details_modified_at timestamptz;

-- migrate:down
alter table profiles drop column if exists details_modified_at;
