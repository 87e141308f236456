-- Drops what MASTER-DATABASE.sql creates, and nothing else: only objects
-- marked as mailsync's (a comment starting "Managed by mailsync", or the
-- schema of an earlier mailsync, recognised by its policies). If any name
-- below is taken by an object that is not mailsync's, it refuses before
-- dropping anything (SQLSTATE MSOWN) and names it: a project's own
-- `contacts` table and its rows are never dropped. The views, the tables
-- (with their triggers, policies, indexes and publication membership), then
-- the functions. Safe on an empty database. It never touches `auth`,
-- `storage`, `realtime` or any other schema, and uses no `cascade`: if
-- something of yours depends on these objects, it stops with Postgres naming
-- it rather than dropping your object too.
--
-- DESTRUCTIVE: every campaign, contact and email recorded here is deleted.
-- Run MASTER-DATABASE.sql afterwards (`mailsync db reset` runs both in one
-- transaction).

create temp table if not exists mailsync_objects (kind text not null, name text not null);
truncate mailsync_objects;
insert into mailsync_objects (kind, name) values
-- mailsync objects: the list of sql/schema/00_ownership.sql
;

do $$
declare
  earlier boolean := (
    select count(*) = 5 from pg_catalog.pg_policies p
    where p.schemaname = 'public' and p.policyname = p.tablename || '_select_own'
      and p.tablename in ('organizations', 'contacts', 'email_campaigns', 'emails_sent', 'email_templates'));
  taken text;
  o record;
begin
  -- First the check, for everything; then the drops, in one block, so that
  -- a refusal drops nothing even where errors do not stop the script.
  select string_agg(format('%s public.%s', m.kind, m.name), ', ' order by m.kind, m.name)
    into taken
  from mailsync_objects m
  left join pg_catalog.pg_class c
    on m.kind in ('table', 'view') and c.oid = to_regclass('public.' || quote_ident(m.name))
  left join pg_catalog.pg_proc p
    on m.kind = 'function' and p.oid = to_regprocedure(case when m.kind = 'function' then 'public.' || m.name end)
  where case m.kind
    when 'table' then c.oid is not null and (c.relkind not in ('r', 'p')
      or not (earlier or coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)))
    when 'view' then c.oid is not null and (c.relkind <> 'v'
      or not (earlier or coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)))
    when 'function' then p.oid is not null
      and not (earlier or coalesce(pg_catalog.obj_description(p.oid, 'pg_proc') like 'Managed by mailsync%', false))
    else false
  end;
  if taken is not null then
    raise exception 'these names are taken by objects that are not mailsync''s, so nothing was dropped: %', taken
      using errcode = 'MSOWN',
            detail = 'mailsync only drops objects marked as its own (a comment starting "Managed by mailsync").',
            hint = 'rename or move your objects; or, to let mailsync take one over (and drop it), mailsync db reset --adopt NAME';
  end if;
  -- In the list's order: dependents first (a function whose result is a
  -- table's row before that table, views, tables, then the functions).
  for o in select m.kind, m.name from mailsync_objects m where m.kind <> 'index' loop
    if o.kind = 'view' and to_regclass('public.' || quote_ident(o.name)) is not null then
      execute format('drop view public.%I', o.name);
    elsif o.kind = 'table' and to_regclass('public.' || quote_ident(o.name)) is not null then
      execute format('drop table public.%I', o.name);
    elsif o.kind = 'function' and to_regprocedure('public.' || o.name) is not null then
      execute format('drop function public.%s', o.name);
    end if;
  end loop;
end;
$$;

drop table mailsync_objects;
