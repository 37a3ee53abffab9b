-- migrate:up

-- Within seconds (docs/website-visibility.md, "Within seconds"): a write that asks for a mentor's
-- reconsideration (20261202000004_visibility_reconsiderations.sql) also announces it, so the
-- website-sync function takes the request at once instead of at its next schedule:
--
-- - on Supabase, through pg_net, as its Database Webhooks do: a POST to the function's
--   /reconsiderations route with the project's service_role key, both read from Supabase Vault
--   (secrets `portal_sync_visibility_push_url` and `portal_sync_visibility_push_key`; without
--   them, or without pg_net, nothing is posted). pg_net sends a request only once the writer's
--   transaction committed, and never for one rolled back;
-- - everywhere, with NOTIFY on channel `portal_sync_visibility` (what `make run` listens to,
--   standing in for pg_net's worker, which it cannot run).
--
-- Once per transaction however many mentors it touched (a transaction-local setting remembers
-- it). The announcement is only a hint: the request itself was written in the same
-- transaction, and the schedule takes it if the announcement is lost.
create function portal_sync.announce_visibility_reconsiderations() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
    push_url text;
    push_key text;
begin
    if current_setting('portal_sync.visibility_announced', true) = 'yes' then
        return null;
    end if;
    perform set_config('portal_sync.visibility_announced', 'yes', true);
    perform pg_notify('portal_sync_visibility', '');
    if to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null
       or to_regclass('vault.decrypted_secrets') is null then
        return null;
    end if;
    -- Dynamic SQL: the function must compile where neither pg_net nor Vault exists.
    execute $sql$
        select max(decrypted_secret) filter (where name = 'portal_sync_visibility_push_url'),
               max(decrypted_secret) filter (where name = 'portal_sync_visibility_push_key')
          from vault.decrypted_secrets
         where name in ('portal_sync_visibility_push_url', 'portal_sync_visibility_push_key')
    $sql$ into push_url, push_key;
    if push_url is null or push_key is null then
        return null;
    end if;
    execute 'select net.http_post(url := $1, body := $2, headers := $3, timeout_milliseconds := 5000)'
        using push_url, '{}'::jsonb,
              jsonb_build_object('Content-Type', 'application/json',
                                 'Authorization', 'Bearer ' || push_key);
    return null;
end
$$;
revoke all on function portal_sync.announce_visibility_reconsiderations() from public;

create trigger visibility_reconsiderations_announced
    after insert on visibility_reconsiderations
    for each statement
    execute function portal_sync.announce_visibility_reconsiderations();

-- migrate:down

drop trigger if exists visibility_reconsiderations_announced on visibility_reconsiderations;
drop function if exists portal_sync.announce_visibility_reconsiderations();
