-- Tables in an exposed schema that the API roles may select without row-level security and
-- that have a column named like a secret or a personal identifier (splinter's list of names;
-- the name must match whole, case-insensitively, `-` read as `_`).
with sensitive_name (name) as (
    select unnest(array[
        -- authentication and credentials
        'password', 'passwd', 'pwd', 'passphrase', 'secret', 'secret_key', 'private_key',
        'api_key', 'apikey', 'auth_key', 'token', 'jwt', 'access_token', 'refresh_token',
        'oauth_token', 'session_token', 'bearer_token', 'auth_code', 'session_id', 'session_key',
        'session_secret', 'recovery_code', 'backup_code', 'verification_code', 'otp',
        'two_factor', '2fa_secret', '2fa_code',
        -- personal identifiers
        'ssn', 'social_security', 'social_security_number', 'driver_license', 'drivers_license',
        'license_number', 'passport_number', 'passport_id', 'national_id', 'tax_id',
        -- financial
        'credit_card', 'card_number', 'cvv', 'cvc', 'cvn', 'bank_account', 'account_number',
        'routing_number', 'iban', 'swift_code', 'bic',
        -- health
        'health_record', 'medical_record', 'patient_id', 'insurance_number', 'health_insurance',
        'medical_insurance', 'treatment',
        -- devices
        'mac_address', 'macaddr', 'imei', 'device_uuid',
        -- keys and certificates
        'pgp_key', 'gpg_key', 'ssh_key', 'certificate', 'license_key', 'activation_key',
        -- biometrics
        'facial_recognition'
    ])
)
select
    format(
        'Table `%s.%s` is exposed via API without RLS and contains potentially sensitive column(s): %s. This may lead to data exposure.',
        n.nspname, c.relname, string_agg(a.attname, ', ' order by a.attname)
    ) as detail,
    format('sensitive_columns_exposed_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where c.relkind = 'r'
    and not c.relrowsecurity
    and (
        pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
        or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT')
    )
    and n.nspname in (
        select trim(s) from unnest(string_to_array(current_setting('pgrst.db_schemas', true), ',')) s
    )
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and replace(lower(a.attname), '-', '_') in (select name from sensitive_name)
group by n.nspname, c.relname
order by n.nspname, c.relname
