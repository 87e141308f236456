-- ---------------------------------------------------------------------------
-- Least privilege, whatever the project's default privileges granted: on
-- every mailsync table and view, `anon` (and PUBLIC) hold nothing, and
-- `authenticated` holds no TRUNCATE (it ignores RLS), REFERENCES, TRIGGER or
-- (PostgreSQL 17) MAINTAIN, and only SELECT on views. UPDATE is column by column: every column but
-- `id`, `user_id`, `created_at`, `updated_at` (set by a trigger) and
-- generated ones, so no update can re-key a row or move it to another user.
-- (`emails_sent.updated_at` may be written, as now(): its trigger is then
-- not called, and replaces any other value with now().)
-- ---------------------------------------------------------------------------

do $$
declare
  o record;
  cols text;
begin
  for o in select m.name, c.oid, c.relkind
           from mailsync_objects m
           join pg_catalog.pg_class c on c.oid = to_regclass('public.' || quote_ident(m.name))
           where m.kind in ('table', 'view') loop
    execute format('revoke all on table public.%I from anon, public', o.name);
    execute format('revoke truncate, references, trigger on table public.%I from authenticated', o.name);
    if o.relkind = 'v' then
      execute format('revoke insert, update, delete on table public.%I from authenticated', o.name);
    end if;
    if current_setting('server_version_num')::int >= 170000 then
      execute format('revoke maintain on table public.%I from authenticated', o.name);
    end if;
    if o.relkind in ('r', 'p') and pg_catalog.has_table_privilege('authenticated', o.oid, 'UPDATE') then
      select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into cols
      from pg_catalog.pg_attribute a
      where a.attrelid = o.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
        and a.attname not in ('id', 'user_id', 'created_at')
        and (a.attname <> 'updated_at' or o.name = 'emails_sent');
      execute format('revoke update on table public.%I from authenticated', o.name);
      if cols is not null then
        execute format('grant update (%s) on table public.%I to authenticated', cols, o.name);
      end if;
    end if;
  end loop;
end;
$$;

-- Ownership marks: every object listed in 00_ownership.sql is now mailsync's.
do $$
declare
  o record;
  mark constant text := 'Managed by mailsync (sql/MASTER-DATABASE.sql): mailsync db reset drops it; keep this comment.';
begin
  for o in select m.kind, m.name, c.relkind from mailsync_objects m
           left join pg_catalog.pg_class c on m.kind <> 'function' and c.oid = to_regclass('public.' || quote_ident(m.name)) loop
    if o.kind = 'table' and o.relkind in ('r', 'p') then
      execute format('comment on table public.%I is %L', o.name, mark);
    elsif o.kind = 'view' and o.relkind = 'v' then
      execute format('comment on view public.%I is %L', o.name, mark);
    elsif o.kind = 'function' and to_regprocedure('public.' || o.name) is not null then
      execute format('comment on function public.%s is %L', o.name, mark);
    end if;
  end loop;
end;
$$;

drop table mailsync_objects;

-- Ask the REST server to reload its schema cache (Supabase's PostgREST
-- listens on this channel).
notify pgrst, 'reload schema';
