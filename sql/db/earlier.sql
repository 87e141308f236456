-- `db reset`, `db apply` and `db verify`: whether this database holds the schema
-- of an earlier mailsync, made before objects were marked: nothing carries the
-- mark yet, and each of the five tables of the guide is what that mailsync made
-- of it (its four own-row policies to authenticated, its user_id referencing
-- auth.users, its updated_at trigger). Five policies that merely share the
-- names are not enough. One row, one column: `yes`.
select not exists (select 1 from pg_catalog.pg_description d
                   where d.description like 'Managed by mailsync%')
   and count(*) = 5 as yes
from (values ('organizations'), ('contacts'), ('email_campaigns'), ('emails_sent'), ('email_templates')) g(t)
where (select count(*) from pg_catalog.pg_policies p
       where p.schemaname = 'public' and p.tablename = g.t
         and p.policyname in (g.t || '_select_own', g.t || '_insert_own', g.t || '_update_own', g.t || '_delete_own')
         and p.roles = array['authenticated']::name[]
         and coalesce(p.qual, p.with_check) like '%auth.uid()%') = 4
  and exists (select 1 from pg_catalog.pg_constraint fk
              join pg_catalog.pg_attribute a on a.attrelid = fk.conrelid and a.attnum = any (fk.conkey)
              where fk.conrelid = to_regclass('public.' || g.t) and fk.contype = 'f'
                and fk.confrelid = 'auth.users'::regclass and a.attname = 'user_id')
  and exists (select 1 from pg_catalog.pg_trigger tg
              where tg.tgrelid = to_regclass('public.' || g.t)
                and tg.tgname = 'update_' || g.t || '_updated_at')
