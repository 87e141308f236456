-- mailsync — MASTER-CLEAN.sql
--
-- Drops exactly what MASTER-DATABASE.sql creates, and nothing else: the
-- views, the tables (with their triggers, policies, indexes and publication
-- membership), then the functions. Safe on an empty database. It never
-- touches `auth`, `storage`, `realtime` or any other schema, and uses no
-- `cascade`: if something of yours depends on these objects, it stops with
-- Postgres naming it rather than dropping your object too.
--
-- DESTRUCTIVE: every campaign, contact and email recorded here is deleted.
-- Run MASTER-DATABASE.sql afterwards (`mailsync db reset` runs both in one
-- transaction).

drop function if exists public.claim_emails(uuid, integer, integer, text, text, boolean);
drop function if exists public.record_email_outcomes(jsonb, text);
drop function if exists public.extend_email_leases(uuid[], text, integer);
drop function if exists public.unknown_emails(uuid, integer);
drop function if exists public.send_campaign(uuid, text);
drop function if exists public.queue_campaign_page(uuid, text, integer);
drop function if exists public.resolve_send_organization(uuid, text);
drop function if exists public.import_contacts(jsonb);
drop function if exists public.import_rows(jsonb);

drop view if exists public.dashboard_analytics;
drop view if exists public.contact_analytics;
drop view if exists public.campaign_analytics;

drop table if exists public.campaign_live;
drop table if exists public.campaign_sends;
drop table if exists public.suppressions;
drop table if exists public.user_daily_sent_counts;
drop table if exists public.campaign_email_counts;
drop table if exists public.emails_sent;
drop table if exists public.email_templates;
drop table if exists public.email_campaigns;
drop table if exists public.contacts;
drop table if exists public.organizations;

drop function if exists public.update_updated_at_column();
drop function if exists public.normalize_contact();
drop function if exists public.normalize_organization();
drop function if exists public.create_missing_organizations();
drop function if exists public.update_recipient_organization();
drop function if exists public.set_email_status_timestamps();
drop function if exists public.complete_settled_campaign();
drop function if exists public.count_inserted_emails();
drop function if exists public.count_updated_emails();
drop function if exists public.count_deleted_emails();
drop function if exists public.clear_email_counts();
drop function if exists public.counter_shard();
drop function if exists public.track_campaign_live();
drop function if exists public.normalize_suppression();
