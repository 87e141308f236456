-- ---------------------------------------------------------------------------
-- Shared by every feature: the `updated_at` trigger function and the
-- organisation-name rule (search_path pinned; everything schema-qualified).
-- ---------------------------------------------------------------------------

create or replace function public.mailsync_set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

revoke all on function public.mailsync_set_updated_at() from anon, public;

-- ---------------------------------------------------------------------------
-- The organisation-name rule, written once.
--
-- A name is kept as written, trimmed, with every run of white space as one
-- space; a blank name is no organisation (`mailsync_org_name`). White space
-- is Unicode's White_Space, listed here rather than left to `\s`, whose
-- meaning follows the database's locale (under C.UTF-8 it misses the
-- no-break spaces U+00A0 and U+202F that French text is full of): tab, line
-- feed, vertical tab, form feed, carriage return, space, U+0085, U+00A0,
-- U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. Zero-width
-- characters (U+200B, U+FEFF) are not white space. Two names
-- are the same organisation when their keys are equal: the kept name,
-- lower-cased (`mailsync_org_key`). Accents count ("Équipe" is not
-- "Equipe", "ÉQUIPE" is "équipe"); `_`, `%` and `\` are characters like
-- any other: nothing matches by pattern.
-- The triggers below store `organizations.name` and
-- `contacts.organization_name` kept, so `organizations.name_key` is the key
-- of an organisation and `lower(organization_name)` the key of a contact's
-- (bulk paths use that, rather than calling the function once per row).
-- Used by the triggers, `import_contacts` (`mailsync import` sends the cells
-- as read and leaves the rule to it), `send_recipients` (`send_campaign`,
-- `queue_campaign_page`), `count_send_recipients` (the count `mailsync
-- campaigns send` asks about), `organization_named` and
-- `contact_organization_spellings` (`--organization`).
-- ---------------------------------------------------------------------------

create or replace function public.mailsync_org_name(name text)
returns text
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
begin
  return nullif(pg_catalog.btrim(pg_catalog.regexp_replace(
    name, '[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+', ' ', 'g')), '');
end;
$$;

create or replace function public.mailsync_org_key(name text)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select pg_catalog.lower(public.mailsync_org_name(name));
$$;

revoke all on function public.mailsync_org_name(text), public.mailsync_org_key(text) from public, anon;
grant execute on function public.mailsync_org_name(text), public.mailsync_org_key(text) to authenticated, service_role;
