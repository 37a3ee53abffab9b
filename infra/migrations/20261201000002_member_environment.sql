-- migrate:up

-- A member is one Dynamics contact of one Dynamics environment (docs/security.md, "Identity"):
-- an organisation's events only ever write members of its own environment, so one organisation's
-- webhooks cannot rewrite another's people by naming their contact id. The environment is the
-- organisation's Dataverse OrganizationId (set by a platform administrator); an organisation
-- without one has an environment of its own, `organization:<id>`.
alter table profiles add column dynamics_environment text;

-- Synced profiles so far belong to the environment of the organisation that holds them (the
-- oldest membership: the one that created the profile).
update profiles p set dynamics_environment = (
    select coalesce(lower(c.dataverse_organization_id), 'organization:' || m.organization_id)
      from organization_memberships m
      left join integration_configs c on c.organization_id = m.organization_id
     where m.profile_id = p.id
     order by m.created_at, m.id
     limit 1)
 where p.dynamics_contact_id is not null;

-- migrate:down
alter table profiles drop column if exists dynamics_environment;
