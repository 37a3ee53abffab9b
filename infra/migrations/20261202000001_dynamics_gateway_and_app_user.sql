-- migrate:up

-- The Dynamics connection's API-key mode is for an API gateway in front of Dataverse (Dataverse
-- itself accepts only Entra bearer tokens): the header the gateway reads the key from, Azure API
-- Management's by default (docs/website-visibility.md, "The Dynamics connection"). Connections
-- already in API-key mode keep the header the functions sent until now, so their gateway goes on
-- accepting them.
alter table integration_configs
    add column dynamics_api_key_header text not null default 'Ocp-Apim-Subscription-Key'
        check (dynamics_api_key_header ~ '^[A-Za-z0-9-]{1,64}$');
update integration_configs set dynamics_api_key_header = 'x-api-key'
 where dynamics_auth_type = 'api_key';

-- The application user the connection's credentials act as in Dynamics (its systemuserid), as
-- the website delivery learned it through WhoAmI: the consumer takes its changes for our own
-- echoes (docs/dataverse-mapping.md). Cleared when the connection changes; learned again then.
-- integration_configs' grants and policies (20261201000001_data_api_access.sql) cover the new
-- columns: the functions' role reads and writes them, the API roles nothing.
alter table integration_configs
    add column dynamics_application_user_id uuid,
    add column dynamics_application_user_learned_at timestamptz;

-- migrate:down
alter table integration_configs
    drop column if exists dynamics_application_user_learned_at,
    drop column if exists dynamics_application_user_id,
    drop column if exists dynamics_api_key_header;
