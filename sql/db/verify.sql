-- `mailsync db verify`: the live database against the schema contract.
-- One row per check: (name, ok, detail, note). Read-only. `note`: what the
-- checks say of an object that is not mailsync's (never a failure).
with
contract_tables(table_name, columns) as (
  values
    ('organizations',   array['id', 'user_id', 'created_at', 'updated_at', 'name']),
    ('contacts',        array['id', 'user_id', 'created_at', 'updated_at', 'email', 'organization_name']),
    ('email_campaigns', array['id', 'user_id', 'created_at', 'updated_at', 'name', 'subject', 'content',
                              'status', 'started_at', 'completed_at']),
    ('emails_sent',     array['id', 'user_id', 'created_at', 'updated_at', 'campaign_id', 'contact_id',
                              'recipient_email', 'recipient_organization', 'status', 'sent_at',
                              'delivered_at', 'error_message', 'message_id', 'smtp_response', 'attempts',
                              'claimed_at', 'lease_owner', 'lease_expires_at']),
    ('email_templates', array['id', 'user_id', 'created_at', 'updated_at', 'name', 'subject', 'content']),
    ('suppressions',    array['id', 'user_id', 'created_at', 'updated_at', 'email', 'reason', 'detail']),
    ('delivery_reports', array['id', 'user_id', 'created_at', 'updated_at', 'email_id', 'recipient', 'report_key',
                               'kind', 'status', 'diagnostic', 'reporting_mta', 'arrived_at'])
),
contract_views(view_name, columns) as (
  values
    ('campaign_analytics',  array['campaign_id', 'campaign_name', 'subject', 'campaign_status', 'user_id',
                                  'created_at', 'started_at', 'completed_at', 'total_emails', 'pending_count',
                                  'sending_count', 'sent_count', 'delivered_count', 'failed_count',
                                  'bounced_count', 'success_rate', 'progress']),
    ('contact_analytics',   array['contact_id', 'email', 'organization_name', 'user_id', 'emails_received',
                                  'emails_delivered', 'delivery_rate', 'last_sent_at']),
    ('dashboard_analytics', array['user_id', 'total_contacts', 'total_organizations', 'active_campaigns',
                                  'emails_sent_today'])
),
contract_triggers(table_name, trigger_name) as (
  values
    ('organizations', 'update_organizations_updated_at'),
    ('contacts', 'update_contacts_updated_at'),
    ('email_campaigns', 'update_email_campaigns_updated_at'),
    ('emails_sent', 'update_emails_sent_updated_at'),
    ('email_templates', 'update_email_templates_updated_at'),
    ('suppressions', 'update_suppressions_updated_at'),
    ('suppressions', 'normalize_suppression'),
    ('delivery_reports', 'update_delivery_reports_updated_at'),
    ('delivery_reports', 'fill_report_recipient'),
    ('emails_sent', 'update_recipient_organization'),
    ('emails_sent', 'set_email_status_timestamps'),
    ('contacts', 'create_missing_organizations_on_insert'),
    ('contacts', 'normalize_contact'),
    ('emails_sent', 'complete_settled_campaign_on_update'),
    ('emails_sent', 'complete_settled_campaign_on_delete'),
    ('emails_sent', 'count_emails_on_insert'),
    ('emails_sent', 'count_emails_on_update'),
    ('emails_sent', 'count_emails_on_delete'),
    ('emails_sent', 'count_emails_on_truncate'),
    ('email_campaigns', 'track_campaign_live_on_insert'),
    ('email_campaigns', 'track_campaign_live_on_update'),
    ('contacts', 'count_added_contacts'),
    ('contacts', 'count_removed_contacts'),
    ('emails_sent', 'count_queued_emails'),
    ('mailsync_quotas', 'update_mailsync_quotas_updated_at')
),
-- The bounds of sql/schema/13_limits.sql: present and validated (a bound
-- left unvalidated by `db apply` means rows over it are still stored).
contract_bounds(table_name, constraint_name) as (
  values
    ('organizations', 'organizations_name_length'),
    ('contacts', 'contacts_email_length'),
    ('contacts', 'contacts_organization_name_length'),
    ('email_campaigns', 'email_campaigns_name_length'),
    ('email_campaigns', 'email_campaigns_subject_length'),
    ('email_campaigns', 'email_campaigns_content_size'),
    ('email_templates', 'email_templates_name_length'),
    ('email_templates', 'email_templates_subject_length'),
    ('email_templates', 'email_templates_content_size'),
    ('emails_sent', 'emails_sent_recipient_email_length'),
    ('emails_sent', 'emails_sent_recipient_organization_length'),
    ('emails_sent', 'emails_sent_error_message_length'),
    ('emails_sent', 'emails_sent_smtp_response_length'),
    ('emails_sent', 'emails_sent_message_id_length'),
    ('emails_sent', 'emails_sent_lease_owner_length'),
    ('campaign_sends', 'campaign_sends_organization_length'),
    ('suppressions', 'suppressions_email_length'),
    ('suppressions', 'suppressions_detail_length'),
    ('delivery_reports', 'delivery_reports_recipient_length')
),
-- The functions the commands call through the REST API.
contract_functions(function_name, args) as (
  values
    ('import_contacts', 'rows jsonb'),
    ('send_campaign', 'campaign uuid, organization text'),
    ('queue_campaign_page', 'campaign uuid, organization text, page_size integer'),
    ('count_send_recipients', 'organization text'),
    ('organization_named', 'name text'),
    ('contact_organization_spellings', 'name text'),
    ('claim_emails', 'campaign uuid, max_emails integer, lease_seconds integer, worker text, message_id_domain text, resend_unknown boolean, hand boolean'),
    ('record_email_outcomes', 'outcomes jsonb, worker text, handed uuid[]'),
    ('extend_email_leases', 'ids uuid[], worker text, lease_seconds integer'),
    ('release_worker_emails', 'worker text, started uuid[]'),
    ('unknown_emails', 'campaign uuid, max_rows integer'),
    ('settle_unknown_emails', 'campaign uuid, outcome text, max_emails integer'),
    ('record_delivery_reports', 'reports jsonb, soft_bounce_limit integer')
),
-- Trigger functions that Auth's user deletion reaches as `supabase_auth_admin`
-- (no privilege in `public`): they must run as their owner.
definer_functions(function_name) as (
  values ('mailsync_complete_settled_campaign'), ('mailsync_count_deleted_emails'), ('mailsync_count_updated_emails'),
         ('mailsync_track_campaign_live'), ('mailsync_count_removed_contacts'),
         -- and the quota counters, which users must not write themselves
         ('mailsync_count_added_contacts'), ('mailsync_count_queued_emails')
),
verbs(cmd) as (values ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE')),
-- What the schema creates: `db verify` puts the list of
-- sql/schema/00_ownership.sql (as embedded in MASTER-DATABASE.sql) here.
mailsync_objects(kind, name) as (
  values
  -- mailsync objects: the list of sql/schema/00_ownership.sql
),
-- An earlier mailsync's schema (before the marks): `db verify` puts the
-- query of sql/db/earlier.sql here.
earlier(yes) as (
  -- mailsync earlier: the query of sql/db/earlier.sql

),
mailsync_relations as (
  select m.kind, m.name, c.oid, c.relkind, c.relacl
  from mailsync_objects m
  join pg_catalog.pg_class c on c.oid = to_regclass('public.' || quote_ident(m.name))
  where m.kind in ('table', 'view')
),
-- Every table and view in `public` that no extension owns; `mine`: it is
-- mailsync's (marked, or holding one of its names). Only mailsync's objects
-- are judged; what the generic checks find on the project's own objects is
-- reported as a note, never as a failure.
public_relations as (
  select c.oid, c.relname, c.relkind, c.relrowsecurity, c.reloptions,
         coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)
           or exists (select 1 from mailsync_objects m
                      where m.kind in ('table', 'view') and m.name = c.relname) as mine
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm')
    and not exists (select 1 from pg_catalog.pg_depend d
                    where d.objid = c.oid and d.deptype = 'e')
),
public_functions as (
  select p.oid, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) as args, p.proconfig,
         coalesce(pg_catalog.obj_description(p.oid, 'pg_proc') like 'Managed by mailsync%', false)
           or exists (select 1 from mailsync_objects m
                      where m.kind = 'function'
                        and to_regprocedure('public.' || m.name) = p.oid) as mine
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  where n.nspname = 'public'
    and not exists (select 1 from pg_catalog.pg_depend d
                    where d.objid = p.oid and d.deptype = 'e')
),
-- The checks every table, view and function of `public` deserves: judged
-- for mailsync's objects, notes for the project's own.
generic(ord, name, ok, detail, mine) as (
  select 22, format('view %s is security_invoker', r.relname),
         coalesce(r.reloptions && array['security_invoker=true', 'security_invoker=on', 'security_invoker=1'], false),
         case when coalesce(r.reloptions && array['security_invoker=true', 'security_invoker=on', 'security_invoker=1'], false)
              then 'runs with the caller''s privileges and RLS'
              else 'runs as its owner and bypasses RLS: recreate it WITH (security_invoker = true)' end,
         r.mine
  from public_relations r
  where r.relkind = 'v'
  union all
  -- Row Level Security on every table.
  select 30, format('RLS enabled on %s', r.relname), r.relrowsecurity,
         case when r.relrowsecurity then 'enabled' else 'disabled: every row is visible to whoever has a grant' end,
         r.mine
  from public_relations r
  where r.relkind in ('r', 'p')
  union all
  select 50, format('anon has no privileges on %s', r.relname),
         not pg_catalog.has_table_privilege('anon', r.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'),
         case when pg_catalog.has_table_privilege('anon', r.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
              then 'anon holds a privilege: revoke all on public.' || quote_ident(r.relname) || ' from anon'
              else 'none' end,
         r.mine
  from public_relations r
  union all
  select 51, format('anon cannot execute %s(%s)', f.proname, f.args),
         not pg_catalog.has_function_privilege('anon', f.oid, 'EXECUTE'),
         case when pg_catalog.has_function_privilege('anon', f.oid, 'EXECUTE')
              then 'revoke execute from anon and public' else 'none' end,
         f.mine
  from public_functions f
  union all
  -- Functions pin search_path.
  select 60, format('function %s(%s) pins search_path', f.proname, f.args),
         coalesce(exists (select 1 from unnest(f.proconfig) c where c like 'search_path=%'), false),
         coalesce((select c from unnest(f.proconfig) c where c like 'search_path=%' limit 1),
                  'no search_path: add SET search_path = '''''),
         f.mine
  from public_functions f
  union all
  -- Every foreign key is covered by an index that starts with its columns.
  select 70, format('foreign key %s is indexed', fk.conname),
         exists (select 1 from pg_catalog.pg_index i
                 where i.indrelid = fk.conrelid
                   and (i.indkey::int2[])[0:cardinality(fk.conkey) - 1] @> fk.conkey
                   and (i.indkey::int2[])[0:cardinality(fk.conkey) - 1] <@ fk.conkey),
         'leading columns of an index',
         r.mine
  from pg_catalog.pg_constraint fk
  join public_relations r on r.oid = fk.conrelid
  where fk.contype = 'f'
),
checks(ord, name, ok, detail) as (
  -- Tables and their contract columns.
  select 10, format('table %s exists', t.table_name),
         to_regclass('public.' || t.table_name) is not null,
         case when to_regclass('public.' || t.table_name) is null then 'missing' else 'present' end
  from contract_tables t
  union all
  select 11, format('table %s has its columns', t.table_name),
         missing.cols is null,
         coalesce('missing: ' || missing.cols, format('%s contract columns present', cardinality(t.columns)))
  from contract_tables t
  cross join lateral (
    select string_agg(col, ', ') as cols
    from unnest(t.columns) col
    where not exists (select 1 from information_schema.columns ic
                      where ic.table_schema = 'public' and ic.table_name = t.table_name
                        and ic.column_name = col)
  ) missing
  union all
  select 12, format('table %s: user_id defaults to auth.uid() and references auth.users', t.table_name),
         coalesce(d.ok, false),
         case when coalesce(d.ok, false) then 'ok' else 'user_id default or foreign key to auth.users is missing' end
  from contract_tables t
  left join lateral (
    select bool_and(
             pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) like '%auth.uid()%'
             and exists (select 1 from pg_catalog.pg_constraint fk
                         where fk.conrelid = a.attrelid and fk.contype = 'f'
                           and fk.confrelid = 'auth.users'::regclass
                           and fk.conkey = array[a.attnum]::int2[])) as ok
    from pg_catalog.pg_attribute a
    join pg_catalog.pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
    where a.attrelid = to_regclass('public.' || t.table_name) and a.attname = 'user_id'
  ) d on true
  union all
  -- Views, their columns, and security_invoker.
  select 20, format('view %s exists', v.view_name),
         to_regclass('public.' || v.view_name) is not null,
         case when to_regclass('public.' || v.view_name) is null then 'missing' else 'present' end
  from contract_views v
  union all
  select 21, format('view %s has its columns', v.view_name),
         missing.cols is null,
         coalesce('missing: ' || missing.cols, format('%s contract columns present', cardinality(v.columns)))
  from contract_views v
  cross join lateral (
    select string_agg(col, ', ') as cols
    from unnest(v.columns) col
    where not exists (select 1 from information_schema.columns ic
                      where ic.table_schema = 'public' and ic.table_name = v.view_name
                        and ic.column_name = col)
  ) missing
  union all
  -- A policy for every verb.
  select 31, format('policy for %s on %s', lower(v.cmd), t.table_name),
         p.policyname is not null,
         case when p.policyname is not null
              then format('%s (to authenticated, own rows)', p.policyname)
              else format('missing: %s_%s_own (no %s policy to authenticated restricting rows to auth.uid())',
                          t.table_name, lower(v.cmd), v.cmd) end
  from contract_tables t
  cross join verbs v
  left join lateral (
    select pp.policyname
    from pg_catalog.pg_policies pp
    where pp.schemaname = 'public' and pp.tablename = t.table_name
      and pp.cmd in (v.cmd, 'ALL')
      and pp.roles = array['authenticated']::name[]
      and coalesce(pp.qual, pp.with_check) like '%auth.uid()%'
    limit 1
  ) p on true
  union all
  -- Triggers.
  select 40, format('trigger %s on %s', ct.trigger_name, ct.table_name),
         exists (select 1 from pg_catalog.pg_trigger tg
                 where tg.tgrelid = to_regclass('public.' || ct.table_name)
                   and tg.tgname = ct.trigger_name and tg.tgenabled <> 'D'),
         case when exists (select 1 from pg_catalog.pg_trigger tg
                           where tg.tgrelid = to_regclass('public.' || ct.table_name)
                             and tg.tgname = ct.trigger_name and tg.tgenabled <> 'D')
              then 'enabled' else 'missing or disabled' end
  from contract_triggers ct
  union all
  -- Grants: anon nothing, authenticated what it needs.
  select 52, format('authenticated can use %s', t.table_name),
         to_regclass('public.' || t.table_name) is not null
           and pg_catalog.has_table_privilege('authenticated', 'public.' || t.table_name, 'SELECT, INSERT, UPDATE, DELETE')
           and pg_catalog.has_table_privilege('authenticated', 'public.' || t.table_name, 'SELECT')
           and pg_catalog.has_table_privilege('authenticated', 'public.' || t.table_name, 'INSERT')
           and pg_catalog.has_any_column_privilege('authenticated', 'public.' || t.table_name, 'UPDATE')
           and pg_catalog.has_table_privilege('authenticated', 'public.' || t.table_name, 'DELETE'),
         'select, insert, delete, and update of the columns users may change'
  from contract_tables t
  union all
  select 53, format('authenticated can read %s', v.view_name),
         to_regclass('public.' || v.view_name) is not null
           and pg_catalog.has_table_privilege('authenticated', 'public.' || v.view_name, 'SELECT'),
         'select'
  from contract_views v
  union all
  select 54, format('authenticated can call %s(%s)', cf.function_name, cf.args),
         exists (select 1 from public_functions f
                 where f.proname = cf.function_name
                   and pg_catalog.has_function_privilege('authenticated', f.oid, 'EXECUTE')),
         case when exists (select 1 from public_functions f where f.proname = cf.function_name)
              then 'execute' else 'missing: run mailsync db apply' end
  from contract_functions cf
  union all
  -- Least privilege: nothing RLS does not govern, whatever the defaults were.
  select 55, format('no truncate, references, trigger or maintain on %s', r.name),
         bad.list is null,
         coalesce('granted: ' || bad.list || ' (revoke it, or run mailsync db apply)',
                  'anon and authenticated hold none of them')
  from mailsync_relations r
  cross join lateral (
    select string_agg(distinct format('%s to %s', x.privilege, x.role), ', ') as list
    from (
      select g.role, unnest(array['TRUNCATE', 'REFERENCES', 'TRIGGER']) as privilege
      from (values ('anon'), ('authenticated')) g(role)
    ) x
    where pg_catalog.has_table_privilege(x.role, r.oid, x.privilege)
       or exists (select 1 from pg_catalog.aclexplode(r.relacl) a
                  where a.privilege_type in (x.privilege, 'MAINTAIN')
                    and (a.grantee = 0 or a.grantee = (select oid from pg_catalog.pg_roles where rolname = x.role)))
  ) bad
  union all
  select 56, format('authenticated cannot update id, user_id or created_at of %s', r.name),
         cols.list is null,
         coalesce('updatable: ' || cols.list || ' (a row could be re-keyed or handed over)', 'only the columns users may change')
  from mailsync_relations r
  cross join lateral (
    select string_agg(a.attname, ', ') as list
    from pg_catalog.pg_attribute a
    where a.attrelid = r.oid and a.attname in ('id', 'user_id', 'created_at') and not a.attisdropped
      and pg_catalog.has_column_privilege('authenticated', r.oid, a.attnum, 'UPDATE')
  ) cols
  where r.kind = 'table'
  union all
  select 57, format('authenticated only reads view %s', r.name),
         not pg_catalog.has_table_privilege('authenticated', r.oid, 'INSERT, UPDATE, DELETE'),
         case when pg_catalog.has_table_privilege('authenticated', r.oid, 'INSERT, UPDATE, DELETE')
              then 'insert, update or delete granted: revoke them' else 'select only' end
  from mailsync_relations r
  where r.kind = 'view'
  union all
  -- Ownership: every name mailsync uses holds mailsync's object (marked).
  select 80, format('%s public.%s is mailsync''s', m.kind, m.name), marked.ok,
         case when marked.ok and m.kind = 'index' then 'an index of a mailsync table'
              when marked.ok then 'marked "Managed by mailsync"'
              when (select yes from earlier)
              then 'not marked yet (set up by an earlier mailsync): mailsync db apply marks it'
              else 'not mailsync''s: db apply and db reset refuse to touch it; rename it, or hand it over with --adopt ' || split_part(m.name, '(', 1)
         end
  from mailsync_objects m
  left join pg_catalog.pg_class c
    on m.kind <> 'function' and c.oid = to_regclass('public.' || quote_ident(m.name))
  left join pg_catalog.pg_proc p
    on p.oid = to_regprocedure(case when m.kind = 'function' then 'public.' || m.name end)
  cross join lateral (select
         case m.kind
             when 'index' then exists (select 1 from pg_catalog.pg_index i
                                        join pg_catalog.pg_class t on t.oid = i.indrelid
                                        where i.indexrelid = c.oid
                                          and t.relname in (select x.name from mailsync_objects x where x.kind = 'table')
                                          and t.relnamespace = 'public'::regnamespace)
             when 'function' then coalesce(pg_catalog.obj_description(p.oid, 'pg_proc') like 'Managed by mailsync%', false)
             else c.relkind = any (case m.kind when 'view' then array['v'::"char"] else array['r'::"char", 'p'::"char"] end)
                  and coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)
           end as ok) marked
  where c.oid is not null or p.oid is not null
  union all
  select 80, format('function %s is security definer', df.function_name),
         coalesce((select bool_and(f.prosecdef) from pg_catalog.pg_proc f
                   where f.pronamespace = 'public'::regnamespace and f.proname = df.function_name), false),
         'runs as its owner, also when Auth deletes a user'
  from definer_functions df
  union all
  -- Limits and quotas (sql/schema/13_limits.sql).
  select 35, format('bound %s on %s', b.constraint_name, b.table_name),
         coalesce(c.convalidated, false),
         case when c.oid is null then 'missing: mailsync db apply adds it'
              when not c.convalidated then 'not validated: rows over it are stored; shorten them and mailsync db apply'
              else pg_catalog.pg_get_constraintdef(c.oid) end
  from contract_bounds b
  left join pg_catalog.pg_constraint c
    on c.conrelid = to_regclass('public.' || b.table_name) and c.conname = b.constraint_name
  union all
  select 36, 'mailsync_quotas has its default row',
         -- Read dynamically: the table may be missing, or a project's own
         -- (checks above say so).
         coalesce(case when exists (select 1 from pg_catalog.pg_attribute a
                                     where a.attrelid = to_regclass('public.mailsync_quotas')
                                       and a.attname = 'user_id' and not a.attisdropped) then
           (pg_catalog.xpath('/row/n/text()', pg_catalog.query_to_xml(
              'select count(*) as n from public.mailsync_quotas where user_id is null', false, true, '')))[1]::text = '1'
         end, false),
         'the row whose user_id is null: every user''s quotas (docs/shared-project.md)'
  union all
  select 37, 'only the owner writes mailsync_quotas',
         to_regclass('public.mailsync_quotas') is not null
           and not pg_catalog.has_table_privilege('authenticated', 'public.mailsync_quotas', 'INSERT, UPDATE, DELETE'),
         'authenticated reads its own row and the default, writes none'
  union all
  -- Realtime: DELETE events skip RLS and reach every subscriber, so the
  -- publication carries only campaign_live (random keys), none of the data.
  select 90, format('supabase_realtime does not publish %s', pt.tablename),
         false, 'its DELETE events reach every subscriber: alter publication supabase_realtime drop table public.'
                 || quote_ident(pt.tablename)
  from pg_catalog.pg_publication_tables pt
  where pt.pubname = 'supabase_realtime' and pt.schemaname = 'public'
    and pt.tablename in ('organizations', 'contacts', 'email_campaigns', 'emails_sent', 'email_templates',
                         'campaign_email_counts', 'user_daily_sent_counts', 'campaign_sends', 'suppressions',
                         'delivery_reports', 'mailsync_quotas', 'user_contact_counts', 'user_daily_queued_counts')
  union all
  select 91, 'supabase_realtime publishes campaign_live',
         exists (select 1 from pg_catalog.pg_publication_tables pt
                 where pt.pubname = 'supabase_realtime' and pt.schemaname = 'public'
                   and pt.tablename = 'campaign_live'),
         case when exists (select 1 from pg_catalog.pg_publication p where p.pubname = 'supabase_realtime')
              then 'campaigns watch --realtime listens to it' else 'no supabase_realtime publication on this database' end
  where exists (select 1 from pg_catalog.pg_publication p where p.pubname = 'supabase_realtime')
)
select name, ok, detail, note from (
  select ord, name, ok, detail, false as note from checks
  union all
  select ord, name, ok, detail, false from generic where mine
  union all
  -- The project's own objects: what the same checks say of them, as notes.
  select ord, name, ok, detail, true from generic where not mine and not ok
) rows
order by note, ord, name
