-- The email-campaign schema of the "Guide de Synchronisation en Temps Réel":
-- five tables, three analytic views, triggers, Row Level Security, grants and
-- indexes. Run it on a Supabase project (SQL editor, psql, or
-- `mailsync db apply`). It is idempotent: applying it again keeps every row.
--
-- Where the guide is naive, the schema does better, and says so where it does:
--   * views are `security_invoker`: a plain view runs as its owner, who
--     bypasses RLS, and would show every user's rows;
--   * organisations are unique per user (case-insensitive), not globally:
--     a global unique name would leak other users' data and block them;
--   * contacts are unique per user on the lower-cased email;
--   * policies call `(select auth.uid())`, evaluated once per statement
--     rather than once per row;
--   * functions pin `search_path`;
--   * privileges are granted explicitly (Supabase stopped auto-granting new
--     `public` tables to the API roles in 2026; older projects still grant
--     everything): `authenticated` gets what it needs, `anon` nothing;
--   * every row points only at rows of its own user (composite foreign keys);
--   * no materialised views: they cannot carry RLS and go stale.
--
-- It needs no superuser: on a hosted project it runs as `postgres`.

-- ---------------------------------------------------------------------------
-- Ownership. Everything the schema creates, replaces or drops is listed here,
-- and only here, and marked as mailsync's at the end (99_privileges.sql) (a comment starting "Managed by
-- mailsync"). Before anything changes, the check below refuses (SQLSTATE
-- MSOWN, nothing changed) when one of these names is taken by an object that
-- is not mailsync's: a project's own `contacts` table or `send_campaign`
-- function is never replaced. A database set up by an earlier mailsync,
-- before the marks existed, is recognised by its policies (`<table>_select_own`
-- on the five tables of the guide) and taken as mailsync's.
-- To hand one of your objects over to mailsync: `mailsync db apply --adopt
-- NAME`, or `comment on table public.NAME is 'Managed by mailsync'`.
-- Run it in one transaction that stops at the first error (the SQL editor
-- does; psql: `psql -1 -v ON_ERROR_STOP=1 -f sql/MASTER-DATABASE.sql`).
-- ---------------------------------------------------------------------------

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
  -- An earlier mailsync's schema: its own policies on the five guide tables.
  earlier boolean := (
    select count(*) = 5 from pg_catalog.pg_policies p
    where p.schemaname = 'public' and p.policyname = p.tablename || '_select_own'
      and p.tablename in ('organizations', 'contacts', 'email_campaigns', 'emails_sent', 'email_templates'));
  taken text;
begin
  select string_agg(format('%s public.%s', o.kind, o.name), ', ' order by o.kind, o.name)
    into taken
  from mailsync_objects o
  left join pg_catalog.pg_class c
    on o.kind in ('table', 'view', 'index') and c.oid = to_regclass('public.' || quote_ident(o.name))
  left join pg_catalog.pg_proc p
    on o.kind = 'function' and p.oid = to_regprocedure(case when o.kind = 'function' then 'public.' || o.name end)
  where case o.kind
    when 'table' then c.oid is not null and (c.relkind not in ('r', 'p')
      or not (earlier or coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)))
    when 'view' then c.oid is not null and (c.relkind <> 'v'
      or not (earlier or coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)))
    when 'function' then p.oid is not null
      and not (earlier or coalesce(pg_catalog.obj_description(p.oid, 'pg_proc') like 'Managed by mailsync%', false))
    -- An index is mailsync's when it indexes a mailsync table.
    when 'index' then c.oid is not null and not exists (
      select 1 from pg_catalog.pg_index i
      join pg_catalog.pg_class t on t.oid = i.indrelid
      join pg_catalog.pg_namespace n on n.oid = t.relnamespace
      where i.indexrelid = c.oid and n.nspname = 'public'
        and t.relname in (select m.name from mailsync_objects m where m.kind = 'table'))
    else false
  end;
  if taken is not null then
    raise exception 'these names are taken by objects that are not mailsync''s, so nothing was changed: %', taken
      using errcode = 'MSOWN',
            detail = 'mailsync only drops or replaces objects marked as its own (a comment starting "Managed by mailsync").',
            hint = 'rename or move your objects; or, to let mailsync take one over (and change or drop it), mailsync db apply --adopt NAME';
  end if;
end;
$$;
