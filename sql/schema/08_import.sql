-- ---------------------------------------------------------------------------
-- Import (`mailsync import`): one call per batch of rows, through PostgREST
-- with the user's JWT (`POST /rest/v1/rpc/import_contacts`).
-- ---------------------------------------------------------------------------

-- Upserts a batch of contacts and the organisations they name, set-wise, as
-- the caller (security invoker: RLS applies to every row it reads or
-- writes), and returns exact counts. One call is one transaction: a batch is
-- written entirely or not at all, and calling it again with the same rows
-- changes nothing (0 created, 0 updated).
--
-- `rows` is a JSON array of {"email": text, "organization": text|null}.
-- Within a batch the last row of an email wins. An empty organisation does
-- not clear the organisation a contact already has. An organisation is
-- matched case-insensitively among the caller's own; a contact takes the
-- spelling of the organisation that already exists.
-- The rows of a batch, normalised as the triggers would, one per email
-- (the last one wins).
create or replace function public.import_rows(rows jsonb)
returns table (email text, organization text)
language sql
immutable
set search_path = ''
as $$
  with input as (
    select lower(btrim(r.value ->> 'email')) as email,
           r.value ->> 'organization' as written,
           r.ordinality
    from pg_catalog.jsonb_array_elements(rows) with ordinality as r(value, ordinality)
  ), spelling as (
    -- The organisation-name rule, once per distinct spelling of the batch.
    select w.written, public.mailsync_org_name(w.written) as organization
    from (select distinct i.written from input i where i.written is not null) w
  )
  select distinct on (input.email) input.email, spelling.organization
  from input
  left join spelling on spelling.written = input.written
  where input.email is not null and input.email <> ''
  order by input.email, input.ordinality desc
$$;

create or replace function public.import_contacts(rows jsonb)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  orgs_created bigint;
  created bigint;
  updated bigint;
  total bigint;
begin
  if me is null then
    raise exception 'import_contacts needs a signed-in user' using errcode = '42501';
  end if;
  if jsonb_typeof(rows) is distinct from 'array' then
    raise exception 'import_contacts expects a JSON array of rows' using errcode = '22023';
  end if;
  -- Bounded, like every array an API function takes (see 13_limits.sql).
  if pg_catalog.jsonb_array_length(rows) > 50000 then
    raise exception 'import_contacts takes at most 50000 rows per call, not %', pg_catalog.jsonb_array_length(rows)
      using errcode = '22023', hint = 'send the rows in batches (mailsync import sends 5000 at a time)';
  end if;

  -- The guide's step 3: the organisations that are missing, inserted in a
  -- fixed order so that concurrent imports take their locks in one order.
  with wanted as (
    select distinct on (lower(b.organization)) b.organization as name
    from public.import_rows(rows) b
    where b.organization is not null
    order by lower(b.organization), b.organization
  ), inserted as (
    insert into public.organizations (user_id, name)
    select me, w.name from wanted w order by lower(w.name)
    on conflict (user_id, name_key) do nothing
    returning 1
  )
  select count(*) into orgs_created from inserted;

  -- Then the contacts. `xmax = 0` tells a row this statement inserted from
  -- one it updated; rows whose organisation is already right are neither
  -- updated nor returned: they are the unchanged ones.
  with batch as (
    select b.email, o.name as organization
    from public.import_rows(rows) b
    left join public.organizations o
      -- b.organization is kept (import_rows): lower() is its key.
      on o.user_id = me and o.name_key = lower(b.organization)
  ), upserted as (
    insert into public.contacts as c (user_id, email, organization_name)
    select me, b.email, b.organization from batch b order by b.email
    on conflict (user_id, email) do update
      set organization_name = coalesce(excluded.organization_name, c.organization_name)
      where c.organization_name is distinct from coalesce(excluded.organization_name, c.organization_name)
    returning (xmax = 0) as inserted
  )
  select (select count(*) from batch),
         count(*) filter (where u.inserted),
         count(*) filter (where not u.inserted)
    into total, created, updated
  from upserted u;

  return jsonb_build_object(
    'rows', total,
    'contacts_created', created,
    'contacts_updated', updated,
    'contacts_unchanged', total - created - updated,
    'organizations_created', orgs_created
  );
end;
$$;

revoke all on function public.import_rows(jsonb), public.import_contacts(jsonb) from public, anon;
grant execute on function public.import_rows(jsonb), public.import_contacts(jsonb) to authenticated, service_role;
