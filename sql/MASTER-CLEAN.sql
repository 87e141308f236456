-- mailsync — MASTER-CLEAN.sql (generated: edit its sources, not this file)
--
-- Made by scripts/generate-sql from sql/clean.sql and the list of sql/schema/00_ownership.sql;
-- a test fails when this file is stale.
--
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
-- mailsync objects: begin
  ('table', 'mailsync_quotas'),
  ('table', 'user_contact_counts'),
  ('table', 'user_daily_queued_counts'),
  ('table', 'delivery_reports'),
  ('function', 'record_delivery_reports(jsonb, integer)'),
  ('function', 'mailsync_parse_delivery_reports(jsonb)'),
  ('function', 'mailsync_fill_report_recipient()'),
  ('table', 'suppressions'),
  ('function', 'mailsync_normalize_suppression()'),
  -- The earlier signature (no `hand`), dropped and replaced.
  ('function', 'claim_emails(uuid, integer, integer, text, text, boolean)'),
  ('function', 'claim_emails(uuid, integer, integer, text, text, boolean, boolean)'),
  ('function', 'release_worker_emails(text, uuid[])'),
  ('table', 'email_claims'),
  ('function', 'mailsync_expire_email_claims(uuid, text)'),
  -- The earlier signature (outcomes only), dropped and replaced.
  ('function', 'record_email_outcomes(jsonb, text)'),
  ('function', 'record_email_outcomes(jsonb, text, uuid[])'),
  ('function', 'settle_unknown_emails(uuid, text, integer)'),
  ('function', 'extend_email_leases(uuid[], text, integer)'),
  ('function', 'unknown_emails(uuid, integer)'),
  -- Before the tables: its result is an email_campaigns row.
  ('function', 'lock_campaign_to_send(uuid, text)'),
  ('function', 'queue_send_recipients(uuid, uuid, text, uuid, integer)'),
  ('view', 'campaign_analytics'),
  ('view', 'contact_analytics'),
  ('view', 'dashboard_analytics'),
  ('table', 'campaign_live'),
  ('table', 'campaign_sends'),
  ('table', 'user_daily_sent_counts'),
  ('table', 'campaign_email_counts'),
  ('table', 'email_templates'),
  ('table', 'emails_sent'),
  ('table', 'email_campaigns'),
  ('table', 'contacts'),
  ('table', 'organizations'),
  ('function', 'mailsync_user_quotas(uuid)'),
  ('function', 'mailsync_count_added_contacts()'),
  ('function', 'mailsync_count_removed_contacts()'),
  ('function', 'mailsync_count_queued_emails()'),
  ('function', 'mailsync_set_updated_at()'),
  ('function', 'mailsync_org_name(text)'),
  ('function', 'mailsync_org_key(text)'),
  ('function', 'organization_named(text)'),
  ('function', 'contact_organization_spellings(text)'),
  ('function', 'mailsync_normalize_contact()'),
  ('function', 'mailsync_normalize_organization()'),
  ('function', 'mailsync_create_missing_organizations()'),
  ('function', 'mailsync_fill_recipient()'),
  ('function', 'mailsync_set_email_status_timestamps()'),
  ('function', 'mailsync_count_inserted_emails()'),
  ('function', 'mailsync_count_updated_emails()'),
  ('function', 'mailsync_count_deleted_emails()'),
  ('function', 'mailsync_clear_email_counts()'),
  ('function', 'import_rows(jsonb)'),
  ('function', 'import_contacts(jsonb)'),
  ('function', 'resolve_send_organization(uuid, text)'),
  ('function', 'send_recipients(uuid, text, uuid, integer)'),
  ('function', 'count_send_recipients(text)'),
  ('function', 'queue_campaign_page(uuid, text, integer)'),
  ('function', 'send_campaign(uuid, text)'),
  ('function', 'mailsync_complete_settled_campaign()'),
  ('function', 'mailsync_refresh_email_statistics()'),
  ('function', 'mailsync_track_campaign_live()'),
  ('index', 'contacts_user_organization_idx'),
  ('index', 'email_campaigns_user_status_idx'),
  ('index', 'emails_sent_user_campaign_idx'),
  ('index', 'email_claims_user_campaign_idx'),
  ('index', 'email_claims_user_worker_idx'),
  ('index', 'emails_sent_user_contact_cover_idx'),
  ('index', 'campaign_email_counts_user_campaign_idx'),
  ('index', 'emails_sent_unsettled_idx'),
  ('index', 'campaign_live_user_campaign_idx'),
  ('index', 'emails_sent_user_message_id_idx'),
  ('index', 'delivery_reports_user_email_idx'),
  ('index', 'delivery_reports_email_idx'),
  ('index', 'delivery_reports_user_recipient_idx'),
  ('index', 'mailsync_quotas_default_idx')
-- mailsync objects: end
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
