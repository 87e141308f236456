# mailsync's messages in English (the default). Each id has its French
# twin in locales/fr/mailsync.ftl; numbers are written by the code
# (src/i18n), so `{ $count }` shows 12,480.

test-count = { $count ->
    [one] { $count } campaign
   *[other] { $count } campaigns
}

## campaigns watch

watch-summary = { $contacts ->
        [one] { $contacts } contact
       *[other] { $contacts } contacts
    } · { $organizations ->
        [one] { $organizations } organisation
       *[other] { $organizations } organisations
    } · { $active ->
        [one] { $active } active campaign
       *[other] { $active } active campaigns
    } · { $sent_today ->
        [one] { $sent_today } email sent today
       *[other] { $sent_today } emails sent today
    }
watch-sending = Sending in progress ({ $count })
watch-none-sending = No campaign is sending.
watch-error-interrupted = interrupted: the watch stopped
watch-finished = Completed campaigns ({ $count })
watch-none-finished = No completed campaign yet.
watch-more = … and { $count } more
watch-completed-at = completed { $at }
watch-eta = ETA { $eta }
watch-sent-of = { $sent } sent of { $total }
watch-delivered = { $count } delivered
watch-failed = { $count } failed
watch-bounced = { $count } bounced
watch-success = success { $rate }
watch-polling = polling every { $seconds }
watch-joining = { $polling } (joining Supabase Realtime…)
watch-live = live (Supabase Realtime)
watch-reconnecting-realtime = { $polling } (reconnecting to Realtime: { $reason })
watch-realtime-refused = { $polling } ({ $reason }; trying Realtime again in { $seconds })
watch-realtime-closed = { $polling } (Realtime closed)
watch-retrying = reconnecting… retrying in { $seconds } ({ $reason })

## progress (indicatif's keys such as {count} are passed as arguments)

progress-eta = ETA { $eta }
progress-rows = { $count } rows
import-progress = Importing
import-progress-contacts = { $count }/{ $total } contacts
import-reading = Reading { $sheet }
export-progress = exporting: { $count } contacts ({ $rate })

## table headings

col-id = id
col-name = name
col-status = status
col-created = created
col-emails = emails
col-sent = sent
col-delivered = delivered
col-bounced = bounced
col-failed = failed
col-success = success

## campaigns list, dashboard

campaigns-count = { $count ->
    [one] { $count } campaign
   *[other] { $count } campaigns
}
dashboard-contacts = contacts
dashboard-organisations = organisations
dashboard-active-campaigns = active campaigns
dashboard-sent-today = emails sent today
col-row = row
col-organisation = organisation
col-email = email
col-reason = reason

## import summary

import-done = Imported { $file } ({ $sheet }): { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    } in { $seconds }
import-dry-run = Dry run of { $file } ({ $sheet }): { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    } would be imported; nothing was written
import-strict-refused = { $file } ({ $sheet }): { $count ->
        [one] { $count } row rejected
       *[other] { $count } rows rejected
    }; --strict: nothing was written
import-interrupted = Interrupted: { $written } of { $total } contacts of { $file } were imported
import-partial = { $written } of { $total } contacts were imported before the failure ({ $created } created, { $updated } updated, { $unchanged } unchanged)
import-col-rows = rows
import-rows-read = data rows read
import-blank = blank (skipped)
import-rejected = rejected
import-duplicates = duplicate emails (last row kept)
import-created = contacts created
import-updated = contacts updated
import-unchanged = contacts unchanged
import-organisations-created = organisations created
import-to-import = contacts to import
import-rejected-rows = Rejected rows:
import-more-rejects = … and { $count } more (--rejects PATH writes them all to a CSV file)

## campaigns deliver ("sent" = left the sender: accepted or bounced)

deliver-progress = Delivering
deliver-progress-counts = sent { $sent } · bounced { $bounced } · failed { $failed }
deliver-dry-run = Dry run: { $queued ->
        [one] { $queued } email queued
       *[other] { $queued } emails queued
    }, { $unknown } with an unknown outcome; the SMTP server { $smtp } answers. Nothing was claimed or sent.
deliver-done = Delivered through { $smtp }: { $sent } sent ({ $accepted } accepted, { $bounced } bounced), { $failed } failed, { $suppressed } suppressed ({ $retries ->
        [one] { $retries } retry
       *[other] { $retries } retries
    }) in { $seconds }, { $rate }
deliver-released = { $count ->
        [one] { $count } claimed email was not tried and is pending again
       *[other] { $count } claimed emails were not tried and are pending again
    }
deliver-nothing = Nothing to deliver: no queued emails in your sending campaigns.

## prompts

prompt-yes-no = [y/N]
# Answers taken as yes besides y and yes, separated by spaces.
prompt-yes-answers = y yes
prompt-email = Email
prompt-password = Password
db-target = Target: { $target }
reset-confirm = This drops every mailsync table and all its rows in { $target }, then recreates the schema. Continue?
reset-no-terminal = refusing to reset { $target } without confirmation: no terminal to ask on (nothing was changed)
reset-no-terminal-hint = pass --yes to reset unattended
reset-cancelled = Reset cancelled: nothing changed.

## campaigns send ({ $organization } is send-of-organization or
## send-for-organization, or empty)

send-of-organization = {" "}of { $organization }
send-for-organization = {" "}for { $organization }

send-no-terminal = refusing to send { $name } without confirmation: no terminal to ask on (nothing was queued)
send-no-terminal-hint = pass --yes to send without asking
send-left-out = , { $count } unsubscribed or bounced left out
send-confirm = Queue campaign { $name } to { $recipients ->
        [one] { $recipients } recipient
       *[other] { $recipients } recipients
    }{ $organization }?
send-confirm-continue = Continue queueing campaign { $name } ({ $queued ->
        [one] { $queued } email
       *[other] { $queued } emails
    } queued so far, { $recipients ->
        [one] { $recipients } recipient
       *[other] { $recipients } recipients
    } in all{ $organization })?
send-cancelled = Not sent: nothing changed.
send-progress = Queueing
send-progress-contacts = of { $total } contacts
send-progress-queued = { $count } queued
send-queued = Campaign { $name } is { $status }: { $count ->
        [one] { $count } email
       *[other] { $count } emails
    } queued{ $organization }
send-already-queued = Campaign { $name } was already queued: { $count ->
        [one] { $count } email
       *[other] { $count } emails
    }{ $organization }, nothing more to queue; it is { $status }
send-queued-resumed = Campaign { $name } is { $status }: { $count } emails queued{ $organization } ({ $now } by this run, the rest by an earlier one)
send-suppressed = { $count ->
        [one] { $count } contact left out
       *[other] { $count } contacts left out
    }: unsubscribed or bounced (mailsync contacts unsubscribe --undo EMAIL takes an unsubscribed one back)
send-next = Deliver it with: mailsync campaigns deliver; follow it with: mailsync campaigns watch --until-done

## errors ($what is what was being done, e.g. "creating the template")

error-line = error: { $message }
hint-line = hint: { $hint }
detail-line = detail: { $detail }
lang-error-unknown = MAILSYNC_LANG={ $value }: mailsync speaks en and fr
lang-hint-unknown = set MAILSYNC_LANG=en or MAILSYNC_LANG=fr, or unset it to follow the locale
error-runtime = starting the async runtime: { $reason }
error-not-signed-in = not signed in to { $project }
error-not-signed-in-hint = run `mailsync login`, or set MAILSYNC_ACCESS_TOKEN (on the local stack: `scripts/local-stack.sh token <uuid>`)
error-no-campaign-id = no campaign with id { $id }
error-no-campaign-named = no campaign named { $text } or with an id starting { $text }
error-campaigns-ambiguous = { $count } campaigns match { $text }: { $matches }
hint-campaigns-list = `mailsync campaigns list` shows yours
hint-campaigns-list-ids = `mailsync campaigns list` shows yours, with their ids
hint-longer-prefix = name one by a longer id prefix (see `mailsync campaigns list`)
error-api-key-refused = { $what }: { $project } refused the API key in SUPABASE_ANON_KEY ({ $message })
hint-api-key = check SUPABASE_ANON_KEY: the project's anon (publishable) key, from its API settings
error-permission = { $what }: permission denied (row-level security or a missing privilege)
error-token-expired = your access token has expired
error-token-refused = the access token was refused (invalid, or for another project)
hint-local-token = the local stack has no Auth server: get a new token with `export MAILSYNC_ACCESS_TOKEN="$(scripts/local-stack.sh token <uuid>)"`
hint-login-again = sign in again with `mailsync login`, or set a fresh MAILSYNC_ACCESS_TOKEN
hint-db-apply = is the mailsync schema applied? run `mailsync db apply`
error-duplicate = { $what }: you already have { $object ->
        [template] a template
        [campaign-email] a campaign email
        [campaign] a campaign
        [organisation] an organisation
        [contact] a contact
       *[other] a record
    } { $value ->
        [none] with that name
       *[other] { $value }
    }
hint-duplicate = choose another name, or use the existing { $object ->
        [template] template
        [campaign-email] campaign email
        [campaign] campaign
        [organisation] organisation
        [contact] contact
       *[other] record
    }
error-missing-reference = { $what }: the { $object ->
        [template] template
        [campaign-email] campaign email
        [campaign] campaign
        [organisation] organisation
        [contact] contact
       *[other] record
    } it refers to does not exist (or is not yours)

## contacts, templates, report

col-subject = subject
contacts-count = { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    }
contacts-no-organisation = no organisation named { $name }
templates-count = { $count ->
        [one] { $count } template
       *[other] { $count } templates
    }
export-done = Exported { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    }{ $organization } to { $file } in { $seconds }
report-done = Wrote { $file }: campaign { $name }, { $count ->
        [one] { $count } recipient
       *[other] { $count } recipients
    }
unsubscribe-undone = { $count ->
        [one] { $count } address taken off the suppression list
       *[other] { $count } addresses taken off the suppression list
    }
unsubscribe-kept = { $count ->
        [one] { $count } address kept
       *[other] { $count } addresses kept
    } on the list: { $reason ->
        [bounced] a hard bounce (no such mailbox); add --include-bounces to take { $count ->
            [one] it
           *[other] them
        } off too
       *[other] a spam complaint; add --include-complaints to take { $count ->
            [one] it
           *[other] them
        } off too
    } ({ $emails })
unsubscribe-done = { $count ->
        [one] { $count } address unsubscribed
       *[other] { $count } addresses unsubscribed
    }: later sends leave them out, deliver skips them
template-created = Created template { $name }
campaign-created = Created campaign { $name } ({ $id }), status { $status }
campaign-send-next = Send it with: mailsync campaigns send { $id }

## import errors (row numbers are passed as text: never grouped)

import-error-strict = { $file }: { $count ->
        [one] { $count } row rejected
       *[other] { $count } rows rejected
    }; --strict wrote nothing
import-error-interrupted = interrupted: rows before { $row } are imported
import-error-interrupted-hint = run the same command again to finish (nothing is duplicated)
import-error-interrupted-reading = interrupted while reading the file: nothing was imported
import-stopping = stopping: finishing the batches in flight (Ctrl-C again to quit at once)
import-error-no-data = { $file }: sheet { $sheet } has no data rows{ $below_header ->
        [yes] {" "}below its header
       *[other] {""}
    }
import-error-no-email-column = { $file }: sheet { $sheet } has no column { $column } (the email column): its rows have { $count ->
        [one] { $count } column
       *[other] { $count } columns
    } (A to { $last })
import-hint-email-column = pass --email-column with a column from A to { $last }
import-hint-looks-like-emails = column { $letter } looks like emails: try --email-column { $letter }
import-seen-header = header row { $row }: { $cells }
import-seen-no-header = no header row
import-first-reason = ; first reason: row { $row } { $reason }
import-error-mostly-rejected = { $file }: { $rejected } of { $data } rows rejected, nothing was imported ({ $seen }; emails read from column { $email }, organisations from column { $organization }{ $why })
import-hint-check-rows = check the rows with --dry-run --rejects rejects.csv; choose the columns with --email-column and --org-column

## usage errors

watch-error-interval = --interval must be at least 0.5 seconds
login-error-email-flag = --email is required without a terminal
login-error-email-empty = an email is required
login-error-password-terminal = no terminal to ask for the password on
login-error-password-terminal-hint = pass --password-stdin and pipe it

## configuration (src/config.rs, src/commands/config.rs, src/postgres.rs, src/smtp.rs)

secret-empty = (empty)
secret-masked = ****** ({ $chars } chars)
source-flag = flag
source-environment = environment
source-env-file = env file { $file }
source-env-file-as = env file { $file } ({ $name })
source-saved-session = saved session { $file }
source-local-stack = local stack ({ $origin })
source-default = default (local stack)
config-col-setting = setting
config-col-value = value
config-col-from = from
config-smtp-url-invalid = ****** (not a valid smtp:// or smtps:// URL)
config-unset-for-deliver = not set (required by campaigns deliver)
config-unset-list-unsubscribe = not set (no List-Unsubscribe header)
config-unset-unsubscribe-secret = not set (no unsubscribe tokens)
config-unset-smtp-ca-file = not set (the public roots only)
config-unset-bounces-ca-file = not set (the public roots only)
config-unset-required = not set (required for this project)
config-unset-for-db = not set (required by the db commands for this project)
config-unset-token = not set; run `mailsync login`
config-default-return-path = default (the From address)
config-bounces-url-invalid = ****** (not a valid imaps:// URL)
config-unset-bounces = not set (required to read bounces)
settings-error-return-path-invalid = { $setting } is not an email address such as bounces@acme.example: { $reason }
settings-error-limit = { $setting } is not valid for { $flag }: { $reason }
bounces-error-no-url = { $name } is not set; it is required to read bounces from { $project } (the local stack's mailbox is the default only for the local stack)
bounces-url-error = { $setting } { $reason }
bounces-url-hint = set { $name } to imaps://user:password@host/FOLDER (imap:// only for this machine)
bounces-url-invalid = is not a valid URL: { $reason }
bounces-url-no-host = has no host
bounces-url-scheme = must start with imaps:// (imap:// only for this machine)
bounces-url-plain-remote = uses imap:// to { $host }, another machine: the password would cross the network unencrypted (use imaps://)
bounces-url-no-user = has no user name (imaps://user:password@host/FOLDER)
bounces-url-not-utf8 = has a user name, password or folder that is not valid UTF-8
config-error-no-db-url = { $name } is not set; it is required for the db commands on { $project } (the local stack's database is the default only for the local stack)
config-hint-db-url = set { $name } to the project's connection string, from the Dashboard's Connect dialog (e.g. postgresql://postgres.<ref>:<password>@aws-0-<region>.pooler.supabase.com:5432/postgres), in the environment or an env file
config-error-no-anon-key = { $name } is not set; it is required for { $project } (find it in the project's API settings)
config-error-url-invalid = { $setting } is not a valid URL: { $reason }
config-error-url-scheme = { $setting } must start with http:// or https://
config-error-url-credentials = { $setting } must not contain credentials
config-error-url-plain-http = { $setting } is { $host } over plain http://: keys, passwords and tokens would cross the network unencrypted
config-hint-plain-http = use https://; for a trusted network only, pass --allow-insecure-http or set { $name }=1
config-error-reading = reading { $file }: { $reason }
config-env-line-unparsable = cannot parse the line at byte { $byte }
config-env-unreadable = cannot read it
pg-target = database "{ $database }" on { $host }:{ $port } as { $user }
pg-error-sslmode = SUPABASE_DB_URL: unknown sslmode "{ $mode }"
pg-hint-sslmode = use verify-full, verify-ca, require, prefer or disable
pg-error-url-invalid = SUPABASE_DB_URL is not a valid Postgres connection URL (expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE)
pg-warning-exposed = warning: { $what } to { $target }: anyone on the network path can read the traffic, including the password. Remove sslmode from SUPABASE_DB_URL for a verified TLS connection.
pg-exposed-disable = sslmode=disable: connecting without TLS
pg-exposed-weak = sslmode={ $mode }: connecting with an unverified certificate, or without TLS if the server offers none,
pg-error-connect = cannot connect to { $target }: { $reason }
pg-error-unverified = refusing to connect to { $target } without a verified TLS connection (nothing was sent, not even the password): { $reason }
pg-hint-unverified = a Supabase database chains to Supabase's root CA, shipped with mailsync; for another server give its CA with ?sslrootcert=/path/ca.pem, or accept an unverified connection explicitly with ?sslmode=prefer
# The server's message and its parts, as the server wrote them.
pg-db-error = { $message } (SQLSTATE { $code })
pg-db-error-detail = ; detail: { $detail }
pg-db-error-hint = ; hint: { $hint }
pg-db-error-where = ; where: { $place }
pg-error-rootcert-read = reading sslrootcert { $path }: { $reason }
pg-error-rootcert-empty = sslrootcert { $path } holds no PEM certificate
pg-error-bundled-ca = the bundled Supabase root CA: { $reason }
error-tls-setup = setting up TLS: { $reason }
smtp-url-invalid = is not a valid URL: { $reason }
smtp-url-no-host = has no host
smtp-url-scheme = must start with smtp:// (STARTTLS) or smtps:// (implicit TLS)
smtp-url-not-utf8 = has a user name or password that is not valid UTF-8
smtp-url-password-no-user = has a password but no user name
smtp-error-no-url = { $name } is not set: say which SMTP server delivers, e.g. smtp://user:password@smtp.example.com:587 (STARTTLS) or smtps://…:465
smtp-error-no-from = { $name } is not set: the sender of your campaigns, e.g. "Acme <news@acme.example>"
smtp-error-from-invalid = { $setting } is not a mailbox such as "Acme <news@acme.example>": { $reason }
smtp-error-list-unsubscribe = { $setting } must be a mailto: or https:// URL, e.g. https://acme.example/unsubscribe?t={"{{"}unsubscribe_token{"}}"}
smtp-error-list-unsubscribe-email = { $setting }: an https:// URL may not carry {"{{"}email{"}}"} (the address would land in web logs, and anyone could unsubscribe anyone); use {"{{"}unsubscribe_token{"}}"} instead, e.g. https://acme.example/unsubscribe?t={"{{"}unsubscribe_token{"}}"}
smtp-error-list-unsubscribe-no-secret = { $setting } uses {"{{"}unsubscribe_token{"}}"}: set { $name } (a secret of at least 32 characters) to sign the tokens
smtp-error-tls = TLS for the SMTP server { $server }: { $reason }
settings-error-ca-file-read = { $setting }: reading { $path }: { $reason }
settings-error-ca-file-empty = { $setting }: { $path } holds no PEM certificate
smtp-error-unusable = cannot use the SMTP server { $server }: { $reason }
smtp-hint-unusable = set { $name } (on the local stack: scripts/local-stack.sh up)
smtp-no-answer = no answer within { $seconds } s
smtp-cannot-connect = cannot connect to { $address }: { $reason }
smtp-no-starttls = the server does not offer STARTTLS, and mailsync never sends mail or a password in clear to another machine (use smtps:// for implicit TLS)
smtp-starttls-failed = STARTTLS failed: { $reason }
smtp-login-refused = the server refused the login of { $user }: { $reason }

## the REST API (src/supabase/rest.rs)

rest-the-access-token = the access token
rest-error-header = { $name } contains characters not allowed in an HTTP header
error-http-client = creating the HTTP client: { $reason }
rest-error-unexpected-answer = { $what }: the server's answer is not what mailsync expects: { $reason }
rest-error-building = { $what }: building the request: { $reason }
rest-error-prefer = invalid Prefer header
rest-error-not-retryable = { $what }: the request cannot be retried
rest-cause-gateway = the gateway answered { $status }
rest-cause-no-answer = no answer in time
rest-cause-timeout = the request timed out
rest-cause-connect = cannot connect to { $project }
rest-error-retry-after = { $what }: the REST API at { $project }/rest/v1 answered { $status } and asks to wait { $seconds } s before trying again
rest-hint-retry-after = nothing was changed by that request; run the command again after that
rest-error-maybe-applied = { $what }: { $cause } after the request was sent (REST API at { $project }/rest/v1); it may or may not have been applied, so it was not repeated
rest-hint-maybe-applied = check the result (e.g. mailsync campaigns list) before running the command again
rest-error-transport = { $what }: { $cause } (REST API at { $project }/rest/v1)
rest-error-no-row = { $what }: the server returned no row
rest-not-found = not found
rest-error-value = { $what }: the server refused a value ({ $message })
rest-invalid-value = invalid value
error-quota = { $what }: { $quota ->
        [contacts] the contact quota is reached: at most { $limit } contacts per user, and this would make { $count }
       *[other] the daily email quota is reached: at most { $limit } emails queued per user per day (UTC), and this would make { $count }
    }; nothing was written
hint-quota = the project's owner sets the quotas in the table public.mailsync_quotas (see docs/shared-project.md)
error-too-long = { $what }: a value is longer than the database allows ({ $constraint })
hint-limits = docs/shared-project.md lists the limits of every column
rest-error-status = { $what }: the REST API answered { $status }

## what was being done, at the start of an error ("listing contacts: ...")

doing-organisation-lookup = looking up the organisation
doing-finding-campaign = finding the campaign
doing-listing-templates = listing templates
doing-creating-template = creating template { $name }
doing-listing-contacts = listing contacts
doing-unsuppressing = removing addresses from the suppression list
doing-suppressing = adding addresses to the suppression list
doing-reading-dashboard = reading dashboard_analytics
doing-reading-campaign-analytics = reading campaign_analytics
doing-importing-rows = importing rows { $first }–{ $last } of { $file }
doing-unknown-outcomes = looking for emails with an unknown outcome
doing-claiming = claiming emails to deliver
doing-counting-queued = counting the queued emails
doing-reading-content = reading the campaign's subject and content
doing-recording-outcomes = recording delivery outcomes
doing-extending-leases = extending the leases of the emails in flight
doing-reading-template = reading the template
doing-creating-campaign = creating the campaign
doing-reading-created-campaign = reading the created campaign
doing-listing-campaigns = listing campaigns
doing-reading-figures = reading the campaign's figures
doing-listing-recipients = listing the campaign's recipients
doing-reading-send = reading the campaign's send
doing-counting-recipients = counting recipients
doing-queueing-campaign-named = queueing campaign { $name }
doing-queueing-campaign = queueing the campaign

## db commands (src/commands/db/)

# $verb is reset or apply.
db-report = { $verb ->
        [reset] Reset
       *[other] Applied
    } { $target }: { $tables } tables, { $views } views, { $policies } policies, { $triggers } triggers in { $ms } ms
db-error-not-ours = { $verb ->
        [reset] reset
       *[other] apply
    } of { $target } refused, nothing changed: { $reason }
db-error-not-earlier = { $verb ->
        [reset] reset
       *[other] apply
    } of { $target } refused, nothing changed: policies named <table>_select_own do not make these objects an earlier mailsync's, and they are not marked as mailsync's: { $objects }
db-hint-not-ours = mailsync drops or replaces only its own objects (marked "Managed by mailsync"). Rename or move yours, or let mailsync take one over with --adopt NAME (reset then drops it with its rows)
db-error-rolled-back = { $verb ->
        [reset] reset
       *[other] apply
    } of { $target } failed and was rolled back, nothing changed: { $reason }
# $kind is table, view or function.
adopt-error-unknown = --adopt { $name }: mailsync uses no object of that name (it uses: { $names })
adopt-error-failed = adopting { $name } failed, nothing changed: { $reason }
adopt-error-wrong-kind = --adopt { $name }: public.{ $name } is not a { $kind }, so mailsync cannot take it over (nothing was changed)
adopt-hint-rename = rename public.{ $name }
adopt-error-missing = --adopt { $name }: there is no public.{ $name } to adopt (nothing was changed)
adopt-done = Adopted { $kind } public.{ $entry }: it is mailsync's from now on
verify-summary = { $checks } checks, { $passed } passed, { $failed } failed
verify-error-drift = the database does not match the schema: { $count } check(s) failed
verify-hint-apply = run `mailsync db apply` to repair
verify-notes = { $count ->
        [one] { $count } note on the project's own objects (not mailsync's, so not judged); -v lists it
       *[other] { $count } notes on the project's own objects (not mailsync's, so not judged); -v lists them
    }
schema-cache-error-query = reading which objects the REST API must know: { $reason }
schema-cache-error-stale = the schema is committed, but the REST API at { $url } still does not know it after { $seconds } s: { $missing }
schema-cache-hint-reload = the API reloads its schema cache on `notify pgrst, 'reload schema'` (run it in the SQL editor) or when it restarts; run the next command once it answers
verify-error = verifying { $target }: { $reason }
migration-up-to-date = { $file } already holds this schema (mailsync { $version }); nothing written
migration-error-exists = { $file }: exists; mailsync never overwrites a migration
migration-hint-exists = run the command again in a second, or remove the file if it was never applied
migration-written = Wrote { $file }
migration-next = Apply it with `supabase db push` (hosted) or `supabase db reset` (local), then check with `mailsync db verify`.

## files

file-error-create-folder = { $file }: cannot create the folder: { $reason }
file-error-read = { $file }: cannot read: { $reason }
file-error-write = { $file }: cannot write: { $reason }
file-error-read-file = { $file }: cannot read the file: { $reason }
file-error-write-file = { $file }: cannot write the file: { $reason }

## import: files, sheets, limits (src/commands/import/)

file-not-found = no such file
file-permission-denied = permission denied
hint-join = { $first }; { $then }
import-error-batch-size = --batch-size must be between 1 and 50000
import-error-in-flight = --in-flight must be between 1 and 8
import-error-reading = reading the file: { $reason }
import-error-no-rows = { $file }: sheet { $sheet } has no rows
import-error-file-type = { $file }: unsupported file type; mailsync reads .xlsx, .xlsm, .xlsb, .xls, .ods, .csv and .tsv
import-error-directory = { $file }: is a directory, not a spreadsheet
import-error-empty-file = { $file }: the file is empty
import-error-no-sheet = { $file }: the workbook has no sheet
import-error-sheet-not-found = { $file }: no sheet named { $sheet }; the sheets are: { $sheets }
import-malformed-workbook = malformed workbook
import-error-protected = { $file }: the workbook is password-protected; save an unprotected copy and import that
import-error-corrupt = { $file }: not a readable workbook (corrupt, truncated, or not the format its name says): { $detail }
import-error-unreadable = { $file }: not a readable workbook: { $detail }
import-error-csv = { $file }: not a readable CSV file near line { $line }: { $reason }
import-error-encoding = --encoding { $label }: unknown
import-hint-encodings = use one of { $names }
import-error-undecodable = { $file }: row { $row } is not valid { $encoding } text; nothing was imported
import-hint-encoding = save the sheet as "CSV UTF-8", or name its encoding, e.g. --encoding { $other }
import-line-undecodable = line { $line } is not valid { $encoding } text
import-error-rejects-is-input = --rejects { $rejects } is the input file { $file }; writing the rejects there would replace it
import-hint-another-file = name another file
import-error-rejects-write = { $file }: cannot write the rejects file: { $reason }
import-hint-rerun-to-finish = rows before { $row } are imported; run the same command again to finish (nothing is duplicated)
import-hint-rerun-when-up = nothing was imported; run the same command again when the server answers
import-hint-fix-then-rerun = rows before { $row } are imported; once this is fixed, importing the file again adds the rest (nothing is duplicated)
import-hint-nothing-imported = nothing was imported
limit-error = { $file }: { $what }; nothing was imported
limit-hint = if the file is genuine, raise the limit with { $flag } (or { $env })
limit-entry-size = the archive entry { $entry } decompresses to more than { $limit }, the limit for one entry
limit-shared-strings = the shared-strings table { $declared ->
        [yes] declares
       *[other] holds
    } { $count } entries, more than the limit of { $limit }
limit-ods-cells = sheet { $sheet } expands to { $count } cells or more (repeated rows and columns included), more than the limit of { $limit } cells
limit-xls-cells = its sheets span { $count } cells or more, more than the limit of { $limit } cells
limit-xls-text = its cells repeat shared strings to more than { $limit } of text, the limit for one entry
limit-ods-text = sheet { $sheet } repeats its cells' text to more than { $limit }, the limit for one entry
import-error-ole-damaged = { $file }: not a readable workbook: its OLE container is damaged ({ $reason }); nothing was imported
ole-sector-past-end = sector { $sector } lies past the end of the file
ole-sector-unreadable = cannot read sector { $sector }: { $reason }
ole-chain-loops = a chain of sectors loops back to sector { $sector }
ole-sector-not-in-fat = sector { $sector } is not in the allocation table
ole-difat-loops = the DIFAT chain loops back to sector { $sector }
ole-difat-empty = the DIFAT chain is empty
ole-fat-twice = the allocation table names sector { $sector } twice
ole-no-root = the file has no root directory
ole-no-mini-stream = a short stream but no mini stream
ole-mini-sector-past-end = mini sector { $sector } lies past the mini stream
limit-sheet-cells = sheet { $sheet } has more than { $limit } cells, the limit for a sheet
limit-cell-length = cell { $cell } of sheet { $sheet } holds { $count } characters, more than the limit of { $limit }
size-bytes = { $count } bytes
size-kib = KiB
size-mib = MiB
size-gib = GiB

## campaigns, contacts, templates, account, files written

campaign-error-no-template = no template named { $name }
hint-templates-list = mailsync templates list shows yours
campaign-error-subject = --subject is required
report-error-not-xlsx = { $file }: a report is a workbook of two sheets
report-hint-xlsx = name an .xlsx file
send-in-organization = {" "}in organisation { $organization }
send-error-no-recipients = campaign { $name } has no recipients{ $organization }: nothing was queued
send-hint-import-first = import contacts first: mailsync import FILE
send-error-queued-before = { $count } email(s) of { $name } were queued before this
send-hint-continue = run the same mailsync campaigns send again: it continues where it stopped
deliver-already-sent = the campaign is already sent: nothing to deliver
deliver-error-not-recorded = { $count } outcome(s) could not be recorded: those emails now have an unknown outcome
deliver-hint-not-recorded = the next run of `mailsync campaigns deliver` reports them
deliver-error-unknown-remain = { $count } email(s) have an unknown outcome: the SMTP server may or may not have accepted them
deliver-hint-unknown-remain = once the SMTP server's logs tell (look for their Message-ID), settle them: mailsync campaigns deliver CAMPAIGN --settle-unknown sent (or failed); or send them again with --resend-unknown
deliver-settled-unknown = { $count } email(s) with an unknown outcome settled as { $outcome }
deliver-error-settle-campaign = --settle-unknown needs the campaign: mailsync campaigns deliver CAMPAIGN --settle-unknown sent
deliver-journal-replayed = a worker that stopped on this machine ({ $worker }) left a journal: { $recorded } outcome(s) recorded, { $released } email(s) it never started queued again, { $started } left with an unknown outcome (the SMTP server had them)
deliver-journal-bad-lines = { $count } line(s) of the journal { $path } could not be read and were ignored
deliver-error-interrupted = interrupted: the emails in flight were finished and recorded; the others are pending again
deliver-error-rate = --rate must be a number of emails per second, 0 for no limit
deliver-error-concurrency = --concurrency must be between 1 and 64
deliver-error-attempts = --attempts must be between 1 and 10
deliver-error-lease = --lease must be at least 10 seconds
deliver-error-retry-delay = --retry-delay must be a number of seconds
deliver-error-verp-plus = --verp writes each email's id after a "+" in the return path's local part, and { $address } already has a "+"
deliver-error-verp-too-long = --verp writes each email's id (36 characters) after a "+" in the return path's local part, and { $address } would then pass the 64 characters a local part may have
deliver-hint-verp = set { $name } to a plain address such as bounces@your-domain.example
deliver-note-no-dsn = the SMTP server { $server } does not offer delivery reports (DSN): bounces still come back to { $return_path }, but no report will say that an email was delivered
deliver-error-no-id = finding the campaign: the server's answer has no id
deliver-error-not-queued = campaign { $name } is { $status }: nothing is queued yet
deliver-hint-send-first = queue it first: mailsync campaigns send { $id }
# $resend is yes with --resend-unknown.
deliver-unknown = { $count } email(s) have an unknown outcome: a worker stopped between claiming and recording them, so the SMTP server may or may not have accepted them; { $resend ->
        [yes] they will be sent again now (--resend-unknown)
       *[other] they are left alone: re-send them with --resend-unknown once you know they did not go out
    }.
deliver-unknown-email = {"  "}{ $email }  Message-ID { $message_id }  claimed { $claimed_at } by { $owner }
deliver-unknown-more = {"  "}… and { $count } more
deliver-stopping = stopping: finishing the emails in flight and recording them (Ctrl-C again to quit at once)
deliver-error-smtp-down = the SMTP server { $server } failed { $count } times in a row (last: { $reply }); stopped: the emails not yet accepted are pending again
watch-note-realtime-refused = watch: { $reason }; { $polling }, trying Realtime again later
realtime-at = Realtime at { $project }/realtime/v1
realtime-no-answer = no answer
realtime-error-key = { $place }: the API key was refused ({ $reason })
realtime-hint-key = check SUPABASE_ANON_KEY: it must be the project's anon (publishable) key
realtime-closed-before-join = closed before joining
realtime-no-join-reply = no reply to the join
realtime-join-refused = join refused
realtime-connection-lost = connection lost
realtime-heartbeat = heartbeat not answered
realtime-closed-by-server = closed by the server
realtime-subscription-failed = subscription failed
realtime-channel-closed-because = Realtime closed the channel: { $reason }
realtime-channel-closed = the channel was closed by the server
realtime-http = the server answered HTTP { $status }
realtime-connection-closed = connection closed
realtime-tls = TLS error
realtime-url = invalid Realtime URL
unsubscribe-error-not-email = { $email } is not an email address (nothing was changed)
unsubscribe-error-none = name at least one email address
unsubscribe-error-token = this unsubscribe token is not valid (forged, altered, signed with another secret, or for an email that is not yours); nothing was changed
settings-error-no-unsubscribe-secret = { $name } is not set: it is needed to check unsubscribe tokens (the secret that signed them)
settings-error-unsubscribe-secret-short = { $setting } is too short: an unsubscribe secret has at least { $min } characters
export-error-json-stdout = --json and `-` both want stdout: write the export to a file to get the JSON summary
export-error-no-organisation = no organisation named { $name }; nothing was written
import-error-column-spec = a column is a letter (B) or a header name (Email)
# $what is organisation or email; $headers lists the first row, or is empty.
import-error-no-column-headed = { $file }: no { $what ->
        [email] email
       *[other] organisation
    } column headed { $name } in the first row{ $headers ->
        [none] {""}
       *[other] {" "}(its headers: { $headers })
    }
login-error-password-empty = an empty password
login-done = Signed in to { $project } as { $email } ({ $user })
login-session-saved = Session saved in { $file }
logout-not-signed-in = Not signed in to { $project }; nothing to do
logout-not-revoked = could not revoke the session at { $auth } (unreachable or already expired); the local session is deleted all the same
logout-done = Signed out of { $project }; deleted { $file }
whoami-user = user
whoami-email = email
whoami-role = role
whoami-project = project
whoami-token-expires = token expires
whoami-token-from = token from
whoami-expired = expired
whoami-expires-in = in { $minutes } min (unix { $at })
whoami-unknown = unknown
auth-no-detail = no detail
auth-no-answer = no answer
auth-cannot-connect = cannot connect
auth-error-unreachable = Supabase Auth at { $auth }: { $why }
auth-hint-check-url = check SUPABASE_URL
auth-error-not-understood = Supabase Auth at { $auth } answered something mailsync does not understand
auth-error-not-confirmed = this email address is not confirmed yet
auth-hint-not-confirmed = open the link Supabase sent to it, then run `mailsync login` again
auth-error-wrong-password = email or password is wrong
auth-error-no-auth-server = { $project } has no Auth server (the local stack has none): `mailsync login` cannot sign in there
auth-hint-token = act as a user with a token: export MAILSYNC_ACCESS_TOKEN="$(scripts/local-stack.sh token <uuid>)"
auth-error-sign-in-refused = Supabase Auth at { $auth } refused the sign-in (HTTP { $status }, { $code }): { $text }
auth-error-session-expired = your session expired
hint-run-login = run `mailsync login`
hint-run-login-again = run `mailsync login` again
auth-error-refresh-refused = Supabase Auth at { $auth } refused to refresh the session (HTTP { $status }, { $code }): { $text }
auth-hint-session-kept = the saved session is kept; run the command again when Supabase Auth answers
auth-error-rate-limited = Supabase Auth at { $auth } is limiting requests (HTTP 429)
auth-error-failed = Supabase Auth at { $auth } failed (HTTP { $status })
auth-hint-wait = nothing was changed; wait a minute and try again
session-error-no-dir = no config directory
session-hint-no-dir = set HOME or { $name }
session-error-read = { $file }: cannot read the saved session: { $reason }
session-error-damaged = { $file }: the saved session is damaged
session-error-save = { $file }: cannot save the session: { $reason }
session-error-delete = { $file }: cannot delete the session: { $reason }
man-error-write = { $dir }: cannot write the manual pages: { $reason }
man-done = Wrote { $count } manual pages to { $dir }; read one with: man { $dir }/mailsync.1
sheet-error-file-type = { $file }: mailsync writes .xlsx or .csv files (or `-` for CSV on stdout)
sheet-error-csv-one-sheet = { $file }: a CSV file holds one sheet; write an .xlsx file
sheet-error-writing = writing { $file }: { $reason }
sheet-error-too-many-rows = { $file }: more than 1 048 576 rows, the most a worksheet holds
sheet-hint-csv = export to .csv
sheet-error-stdout = a workbook cannot be written to stdout
content-error-read = { $file }: cannot read the content: { $reason }
prompt-error-password = reading the password: { $reason }
json-error-encoding = encoding JSON output: { $reason }
bounces-scan-message = { $source }: { $kind } ({ $format })
bounces-scan-recipient = {"  "}{ $address }: { $action } { $status } { $diagnostic }
bounces-scan-recipient-bare = {"  "}{ $address }: { $action } { $status }
bounces-scan-problem = {"  "}only partly read: { $problem }
bounces-scan-summary = { $messages ->
    [one] 1 message
   *[other] { $messages } messages
  }: { $reports } delivery reports, { $complaints } complaints, { $others } not reports
bounces-scan-error-read = { $path }: cannot read: { $reason }
bounces-scan-hint-paths = give .eml files, Maildir folders, mbox files or directories holding them
bounces-kind-delivery-status = delivery report
bounces-kind-complaint = complaint
bounces-kind-not-a-report = not a report
bounces-action-failed = failed
bounces-action-delayed = delayed
bounces-action-delivered = delivered
bounces-action-relayed = relayed
bounces-action-expanded = expanded
bounces-action-complained = complained


## The bounce mailbox (IMAP)
mailbox-error-unreachable = could not reach the bounce mailbox { $address }: { $cause }
mailbox-error-lost = the connection to the bounce mailbox { $address } failed: { $cause }
mailbox-hint-rerun = what was recorded stays recorded; run the command again to go on
mailbox-hint-check-url = check the host and port in { $name } (mailsync config shows it); nothing was read or recorded
mailbox-error-login = the bounce mailbox { $address } refused the login of { $user }
mailbox-hint-login = check the user and password in { $name }; nothing was read or recorded
mailbox-error-folder = the bounce mailbox { $address } has no folder { $folder } (or refused to open it)
mailbox-error-tls = TLS with the bounce mailbox { $address } failed: { $reason }
mailbox-hint-tls = the server must present a valid certificate for its name; nothing was sent to it
mailbox-cause-timeout = no answer in time
mailbox-cause-closed = the server closed the connection
mailbox-cause-bad-name = the host is not a valid name for a certificate

## bounces fetch
fetch-error-interval = --interval must be at least 1 second
fetch-error-interrupted = interrupted: the messages read so far are recorded; run the command again to go on
fetch-retrying = { $reason }; trying again
fetch-no-keywords = the mailbox keeps no keywords: recorded messages cannot be marked, so each run reads every message again (each report still counts once)
fetch-what-record = recording the delivery reports
fetch-too-large = { $size } MB, only the first { $read } MB read;
fetch-line-not-report = UID { $uid }: { $size }not a report, left in the mailbox
fetch-line-no-recipient = UID { $uid }: { $size }a report naming no recipient that could be read, left in the mailbox ({ $problem })
fetch-line-report = UID { $uid }: { $size }{ $kind }: { $recipients }
fetch-kind-delivery = delivery report
fetch-kind-complaint = complaint
fetch-recipient = { $address } { $action }{ $status } → { $outcome }
fetch-outcome-recorded = recorded
fetch-outcome-duplicate = already recorded
fetch-outcome-unmatched = matches none of your emails, left in the mailbox
fetch-outcome-invalid = not accepted by the database, left in the mailbox
fetch-outcome-dry-run = would be recorded (dry run)
fetch-done = { $mailbox }: { $messages } message(s) read; { $recorded } report(s) recorded, { $duplicates } already recorded, { $unmatched } not recorded, { $not_reports } not a report
fetch-dry-run-done = Dry run, nothing recorded or marked: { $mailbox }: { $messages } message(s) read, { $reports } report(s), { $not_reports } not a report
fetch-progress = Reading reports
fetch-stopping = stopping: finishing the messages in hand and recording them (Ctrl-C again to quit at once)

## The local stack's files, found but not trusted (shown under -v)
local-stack-ignored-above = ignored { $path }: it is above { $boundary }, where the search for the local stack stops (set MAILSYNC_STACK_DIR to use it)
local-stack-ignored-not-file = ignored { $path }: not a regular file
local-stack-ignored-owner = ignored { $path }: it belongs to another user
local-stack-ignored-writable = ignored { $path }: other users may write it
local-stack-ignored-remote = ignored { $path }: its { $name } is not on this machine
