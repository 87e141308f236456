# Les messages de mailsync en français (choisis par la locale `fr*` ou
# `--lang fr`). Mêmes identifiants que locales/en/mailsync.ftl ; les nombres
# sont écrits par le code (src/i18n) : `{ $count }` donne 12 480.

test-count = { $count ->
    [one] { $count } campagne
   *[other] { $count } campagnes
}

## campaigns watch

watch-summary = { $contacts ->
        [one] { $contacts } contact
       *[other] { $contacts } contacts
    } · { $organizations ->
        [one] { $organizations } organisation
       *[other] { $organizations } organisations
    } · { $active ->
        [one] { $active } campagne active
       *[other] { $active } campagnes actives
    } · { $sent_today ->
        [one] { $sent_today } e-mail envoyé aujourd’hui
       *[other] { $sent_today } e-mails envoyés aujourd’hui
    }
watch-sending = Envoi en progression ({ $count })
watch-none-sending = Aucune campagne en cours d’envoi.
watch-error-interrupted = interrompu : le suivi s’est arrêté
watch-finished = Campagne terminée ({ $count })
watch-none-finished = Aucune campagne terminée pour l’instant.
watch-more = … et { $count } de plus
watch-completed-at = terminée le { $at }
watch-eta = fin dans { $eta }
watch-sent-of = { $sent ->
        [one] { $sent } envoyé
       *[other] { $sent } envoyés
    } sur { $total }
watch-delivered = { $count ->
        [one] { $count } remis
       *[other] { $count } remis
    }
watch-failed = { $count } en échec
watch-bounced = { $count ->
        [one] { $count } rebond
       *[other] { $count } rebonds
    }
watch-success = réussite { $rate }
watch-polling = relevé toutes les { $seconds }
watch-joining = { $polling } (connexion à Supabase Realtime…)
watch-live = en direct (Supabase Realtime)
watch-reconnecting-realtime = { $polling } (reconnexion à Realtime : { $reason })
watch-realtime-refused = { $polling } ({ $reason } ; nouvel essai de Realtime dans { $seconds })
watch-realtime-closed = { $polling } (Realtime fermé)
watch-retrying = reconnexion… nouvel essai dans { $seconds } ({ $reason })

## progression (les clés d’indicatif comme {count} sont passées en arguments)

progress-eta = fin dans { $eta }
progress-rows = { $count } lignes
import-progress = Import
import-progress-contacts = { $count }/{ $total } contacts
import-reading = Lecture de { $sheet }
export-progress = export : { $count } contacts ({ $rate })

## en-têtes des tableaux

col-id = id
col-name = nom
col-status = statut
col-created = créée
col-emails = e-mails
col-sent = envoyés
col-delivered = remis
col-bounced = rebonds
col-failed = échecs
col-success = réussite

## campaigns list, dashboard

campaigns-count = { $count ->
    [one] { $count } campagne
   *[other] { $count } campagnes
}
dashboard-contacts = contacts
dashboard-organisations = organisations
dashboard-active-campaigns = campagnes actives
dashboard-sent-today = e-mails envoyés aujourd’hui
col-row = ligne
col-organisation = organisation
col-email = e-mail
col-reason = motif

## bilan d’import

import-done = Import de { $file } ({ $sheet }) : { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    } en { $seconds }
import-dry-run = Essai à blanc de { $file } ({ $sheet }) : { $count ->
        [one] { $count } contact serait importé
       *[other] { $count } contacts seraient importés
    } ; rien n’a été écrit
import-strict-refused = { $file } ({ $sheet }) : { $count ->
        [one] { $count } ligne refusée
       *[other] { $count } lignes refusées
    } ; --strict : rien n’a été écrit
import-interrupted = Interrompu : { $written } contacts sur { $total } de { $file } ont été importés
import-partial = { $written } contacts sur { $total } ont été importés avant l’échec ({ $created } créés, { $updated } mis à jour, { $unchanged } inchangés)
import-col-rows = lignes
import-rows-read = lignes de données lues
import-blank = vides (ignorées)
import-rejected = refusées
import-duplicates = e-mails en double (dernière ligne gardée)
import-created = contacts créés
import-updated = contacts mis à jour
import-unchanged = contacts inchangés
import-organisations-created = organisations créées
import-to-import = contacts à importer
import-rejected-rows = Lignes refusées :
import-more-rejects = … et { $count } de plus (--rejects CHEMIN les écrit toutes dans un fichier CSV)

## campaigns deliver (« envoyé » = parti de l’expéditeur : accepté ou rebond)

deliver-progress = Envoi
deliver-progress-counts = envoyés { $sent } · rebonds { $bounced } · échecs { $failed }
deliver-dry-run = Essai à blanc : { $queued ->
        [one] { $queued } e-mail en file
       *[other] { $queued } e-mails en file
    }, { $unknown } à l’issue inconnue ; le serveur SMTP { $smtp } répond. Rien n’a été pris ni envoyé.
deliver-done = Remis via { $smtp } : { $sent ->
        [one] { $sent } envoyé
       *[other] { $sent } envoyés
    } ({ $accepted } acceptés, { $bounced } rebonds), { $failed } en échec, { $suppressed } supprimés ({ $retries } nouveaux essais) en { $seconds }, { $rate }
deliver-released = { $count ->
        [one] { $count } e-mail pris n’a pas été essayé et attend de nouveau
       *[other] { $count } e-mails pris n’ont pas été essayés et attendent de nouveau
    }
deliver-nothing = Rien à remettre : aucun e-mail en file dans vos campagnes en cours d’envoi.

## questions

prompt-yes-no = [o/N]
# Réponses comprises comme oui, en plus de y et yes, séparées par des espaces.
prompt-yes-answers = o oui
prompt-email = E-mail
prompt-password = Mot de passe
db-target = Cible : { $target }
reset-confirm = Ceci supprime toutes les tables de mailsync et toutes leurs lignes dans { $target }, puis recrée le schéma. Continuer ?
reset-no-terminal = réinitialisation de { $target } refusée sans confirmation : pas de terminal où demander (rien n’a été changé)
reset-no-terminal-hint = passez --yes pour la faire sans surveillance
reset-cancelled = Réinitialisation annulée : rien n’a changé.

## campaigns send ({ $organization } vaut send-of-organization ou
## send-for-organization, ou rien)

send-of-organization = {" "}de { $organization }
send-for-organization = {" "}pour { $organization }
send-no-terminal = envoi de { $name } refusé sans confirmation : pas de terminal où demander (rien n’a été mis en file)
send-no-terminal-hint = passez --yes pour envoyer sans demander
send-left-out = , { $count ->
        [one] { $count } désinscrit ou en échec définitif écarté
       *[other] { $count } désinscrits ou en échec définitif écartés
    }
send-confirm = Mettre en file la campagne { $name } pour { $recipients ->
        [one] { $recipients } destinataire
       *[other] { $recipients } destinataires
    }{ $organization } ?
send-confirm-continue = Continuer la mise en file de la campagne { $name } ({ $queued ->
        [one] { $queued } e-mail en file
       *[other] { $queued } e-mails en file
    } jusqu’ici, { $recipients ->
        [one] { $recipients } destinataire
       *[other] { $recipients } destinataires
    } en tout{ $organization }) ?
send-cancelled = Pas envoyé : rien n’a changé.
send-progress = Mise en file
send-progress-contacts = sur { $total } contacts
send-progress-queued = { $count } en file
send-queued = La campagne { $name } est { $status } : { $count ->
        [one] { $count } e-mail en file
       *[other] { $count } e-mails en file
    }{ $organization }
send-already-queued = La campagne { $name } était déjà en file : { $count ->
        [one] { $count } e-mail
       *[other] { $count } e-mails
    }{ $organization }, plus rien à mettre en file ; elle est { $status }
send-queued-resumed = La campagne { $name } est { $status } : { $count } e-mails en file{ $organization } ({ $now } par cette exécution, le reste par une précédente)
send-suppressed = { $count ->
        [one] { $count } contact laissé de côté
       *[other] { $count } contacts laissés de côté
    } : désabonnés ou en rebond (mailsync contacts unsubscribe --undo EMAIL en reprend un désabonné)
send-next = Remettez-la avec : mailsync campaigns deliver ; suivez-la avec : mailsync campaigns watch --until-done

## erreurs ($what est ce qui était en cours, p. ex. « creating the template »)

error-line = erreur : { $message }
hint-line = conseil : { $hint }
detail-line = détail : { $detail }
lang-error-unknown = MAILSYNC_LANG={ $value } : mailsync parle en et fr
lang-hint-unknown = définissez MAILSYNC_LANG=en ou MAILSYNC_LANG=fr, ou retirez-la pour suivre la locale
error-runtime = démarrage de l’environnement d’exécution asynchrone : { $reason }
error-not-signed-in = pas de session ouverte sur { $project }
error-not-signed-in-hint = lancez `mailsync login`, ou définissez MAILSYNC_ACCESS_TOKEN (sur la pile locale : `scripts/local-stack.sh token <uuid>`)
error-no-campaign-id = aucune campagne d’id { $id }
error-no-campaign-named = aucune campagne nommée { $text } ni dont l’id commence par { $text }
error-campaigns-ambiguous = { $count } campagnes correspondent à { $text } : { $matches }
hint-campaigns-list = `mailsync campaigns list` montre les vôtres
hint-campaigns-list-ids = `mailsync campaigns list` montre les vôtres, avec leurs ids
hint-longer-prefix = désignez-en une par un début d’id plus long (voir `mailsync campaigns list`)
error-api-key-refused = { $what } : { $project } a refusé la clé d’API de SUPABASE_ANON_KEY ({ $message })
hint-api-key = vérifiez SUPABASE_ANON_KEY : la clé anon (publishable) du projet, dans ses réglages d’API
error-permission = { $what } : permission refusée (sécurité au niveau des lignes, ou un privilège manquant)
error-token-expired = votre jeton d’accès a expiré
error-token-refused = le jeton d’accès a été refusé (invalide, ou d’un autre projet)
hint-local-token = la pile locale n’a pas de serveur Auth : prenez un nouveau jeton avec `export MAILSYNC_ACCESS_TOKEN="$(scripts/local-stack.sh token <uuid>)"`
hint-login-again = reconnectez-vous avec `mailsync login`, ou définissez un MAILSYNC_ACCESS_TOKEN neuf
hint-db-apply = le schéma de mailsync est-il appliqué ? lancez `mailsync db apply`
error-duplicate = { $what } : vous avez déjà { $object ->
        [template] un modèle
        [campaign-email] un e-mail de campagne
        [campaign] une campagne
        [organisation] une organisation
        [contact] un contact
       *[other] un enregistrement
    } { $value ->
        [none] de ce nom
       *[other] { $value }
    }
hint-duplicate = choisissez un autre nom, ou utilisez { $object ->
        [template] le modèle existant
        [campaign-email] l’e-mail de campagne existant
        [campaign] la campagne existante
        [organisation] l’organisation existante
        [contact] le contact existant
       *[other] l’enregistrement existant
    }
error-missing-reference = { $what } : { $object ->
        [template] le modèle
        [campaign-email] l’e-mail de campagne
        [campaign] la campagne
        [organisation] l’organisation
        [contact] le contact
       *[other] l’enregistrement
    } en question n’existe pas (ou n’est pas à vous)

## contacts, modèles, rapport

col-subject = objet
contacts-count = { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    }
contacts-no-organisation = aucune organisation nommée { $name }
templates-count = { $count ->
        [one] { $count } modèle
       *[other] { $count } modèles
    }
export-done = { $count ->
        [one] { $count } contact exporté
       *[other] { $count } contacts exportés
    }{ $organization } vers { $file } en { $seconds }
report-done = { $file } écrit : campagne { $name }, { $count ->
        [one] { $count } destinataire
       *[other] { $count } destinataires
    }
unsubscribe-undone = { $count ->
        [one] { $count } adresse retirée de la liste d’exclusion
       *[other] { $count } adresses retirées de la liste d’exclusion
    }
unsubscribe-kept = { $count ->
        [one] { $count } adresse gardée
       *[other] { $count } adresses gardées
    } sur la liste : { $reason ->
        [bounced] rebond définitif (boîte inexistante) ; ajoutez --include-bounces pour { $count ->
            [one] la
           *[other] les
        } retirer aussi
       *[other] plainte pour spam ; ajoutez --include-complaints pour { $count ->
            [one] la
           *[other] les
        } retirer aussi
    } ({ $emails })
unsubscribe-done = { $count ->
        [one] { $count } adresse désabonnée
       *[other] { $count } adresses désabonnées
    } : les envois suivants les laissent de côté, deliver les saute
template-created = Modèle { $name } créé
campaign-created = Campagne { $name } créée ({ $id }), statut { $status }
campaign-send-next = Envoyez-la avec : mailsync campaigns send { $id }

## erreurs d’import (les numéros de ligne sont passés en texte : jamais groupés)

import-error-strict = { $file } : { $count ->
        [one] { $count } ligne refusée
       *[other] { $count } lignes refusées
    } ; --strict n’a rien écrit
import-error-interrupted = interrompu : les lignes avant la ligne { $row } sont importées
import-error-interrupted-hint = relancez la même commande pour finir (rien n’est importé deux fois)
import-error-interrupted-reading = interrompu pendant la lecture du fichier : rien n’a été importé
import-stopping = arrêt : les lots en cours d’envoi sont terminés (Ctrl-C de nouveau pour quitter tout de suite)
import-error-no-data = { $file } : la feuille { $sheet } n’a aucune ligne de données{ $below_header ->
        [yes] {" "}sous son en-tête
       *[other] {""}
    }
import-error-no-email-column = { $file } : la feuille { $sheet } n’a pas de colonne { $column } (la colonne des e-mails) : ses lignes ont { $count ->
        [one] { $count } colonne
       *[other] { $count } colonnes
    } (de A à { $last })
import-hint-email-column = passez --email-column avec une colonne de A à { $last }
import-hint-looks-like-emails = la colonne { $letter } ressemble à des e-mails : essayez --email-column { $letter }
import-seen-header = ligne d’en-tête { $row } : { $cells }
import-seen-no-header = pas de ligne d’en-tête
import-first-reason = {" "}; premier motif : ligne { $row } { $reason }
import-error-mostly-rejected = { $file } : { $rejected } lignes refusées sur { $data }, rien n’a été importé ({ $seen } ; e-mails lus dans la colonne { $email }, organisations dans la colonne { $organization }{ $why })
import-hint-check-rows = vérifiez les lignes avec --dry-run --rejects rejets.csv ; choisissez les colonnes avec --email-column et --org-column

## erreurs d’usage

watch-error-interval = --interval doit valoir au moins 0,5 seconde
login-error-email-flag = --email est requis sans terminal
login-error-email-empty = un e-mail est requis
login-error-password-terminal = pas de terminal où demander le mot de passe
login-error-password-terminal-hint = passez --password-stdin et envoyez-le par un tube

## configuration (src/config.rs, src/commands/config.rs, src/postgres.rs, src/smtp.rs)

secret-empty = (vide)
secret-masked = ****** ({ $chars } caractères)
source-flag = option
source-environment = environnement
source-env-file = fichier env { $file }
source-env-file-as = fichier env { $file } ({ $name })
source-saved-session = session enregistrée { $file }
source-local-stack = pile locale ({ $origin })
source-default = par défaut (pile locale)
config-col-setting = réglage
config-col-value = valeur
config-col-from = origine
config-smtp-url-invalid = ****** (pas une URL smtp:// ou smtps:// valide)
config-unset-for-deliver = non défini (requis par campaigns deliver)
config-unset-list-unsubscribe = non défini (pas d’en-tête List-Unsubscribe)
config-unset-unsubscribe-secret = non défini (pas de jetons de désabonnement)
config-unset-smtp-ca-file = non défini (les autorités publiques seules)
config-unset-bounces-ca-file = non défini (les autorités publiques seules)
config-unset-required = non défini (requis pour ce projet)
config-unset-for-db = non défini (requis par les commandes db pour ce projet)
config-unset-token = non défini ; lancez `mailsync login`
config-default-return-path = par défaut (l’adresse From)
config-bounces-url-invalid = ****** (pas une URL imaps:// valide)
config-unset-bounces = non défini (requis pour lire les retours)
settings-error-return-path-invalid = { $setting } n’est pas une adresse e-mail comme bounces@acme.example : { $reason }
settings-error-limit = { $setting } n’est pas valable pour { $flag } : { $reason }
bounces-error-no-url = { $name } n’est pas défini ; il est requis pour lire les retours de { $project } (la boîte de la pile locale n’est la valeur par défaut que pour la pile locale)
bounces-url-error = { $setting } { $reason }
bounces-url-hint = définissez { $name } à imaps://utilisateur:mot-de-passe@hôte/DOSSIER (imap:// seulement pour cette machine)
bounces-url-invalid = n’est pas une URL valide : { $reason }
bounces-url-no-host = n’a pas d’hôte
bounces-url-scheme = doit commencer par imaps:// (imap:// seulement pour cette machine)
bounces-url-plain-remote = utilise imap:// vers { $host }, une autre machine : le mot de passe traverserait le réseau en clair (utilisez imaps://)
bounces-url-no-user = n’a pas de nom d’utilisateur (imaps://utilisateur:mot-de-passe@hôte/DOSSIER)
bounces-url-not-utf8 = a un nom d’utilisateur, un mot de passe ou un dossier qui n’est pas de l’UTF-8 valide
config-error-no-db-url = { $name } n’est pas défini ; les commandes db en ont besoin sur { $project } (la base de la pile locale n’est la valeur par défaut que pour la pile locale)
config-hint-db-url = donnez à { $name } la chaîne de connexion du projet, prise dans la fenêtre Connect du Dashboard (p. ex. postgresql://postgres.<ref>:<password>@aws-0-<region>.pooler.supabase.com:5432/postgres), dans l’environnement ou un fichier env
config-error-no-anon-key = { $name } n’est pas défini ; il est requis pour { $project } (il se trouve dans les réglages d’API du projet)
config-error-url-invalid = { $setting } n’est pas une URL valide : { $reason }
config-error-url-scheme = { $setting } doit commencer par http:// ou https://
config-error-url-credentials = { $setting } ne doit pas contenir d’identifiants
config-error-url-plain-http = { $setting } désigne { $host } en http:// simple : clés, mots de passe et jetons traverseraient le réseau en clair
config-hint-plain-http = utilisez https:// ; sur un réseau de confiance seulement, passez --allow-insecure-http ou définissez { $name }=1
config-error-reading = lecture de { $file } : { $reason }
config-env-line-unparsable = ligne illisible à l’octet { $byte }
config-env-unreadable = fichier illisible
pg-target = la base « { $database } » sur { $host }:{ $port } en tant que { $user }
pg-error-sslmode = SUPABASE_DB_URL : sslmode « { $mode } » inconnu
pg-hint-sslmode = utilisez verify-full, verify-ca, require, prefer ou disable
pg-error-url-invalid = SUPABASE_DB_URL n’est pas une URL de connexion Postgres valide (attendu : postgresql://USER:PASSWORD@HOST:PORT/DATABASE)
pg-warning-exposed = avertissement : { $what } vers { $target } : n’importe qui sur le chemin réseau peut lire le trafic, mot de passe compris. Retirez sslmode de SUPABASE_DB_URL pour une connexion TLS vérifiée.
pg-exposed-disable = sslmode=disable : connexion sans TLS
pg-exposed-weak = sslmode={ $mode } : connexion avec un certificat non vérifié, ou sans TLS si le serveur n’en propose pas,
pg-error-connect = connexion impossible à { $target } : { $reason }
pg-error-unverified = connexion à { $target } refusée sans TLS vérifié (rien n’a été envoyé, pas même le mot de passe) : { $reason }
pg-hint-unverified = une base Supabase est signée par l’autorité racine de Supabase, fournie avec mailsync ; pour un autre serveur, donnez son autorité avec ?sslrootcert=/chemin/ca.pem, ou acceptez explicitement une connexion non vérifiée avec ?sslmode=prefer
# Le message du serveur et ses parties, tels que le serveur les a écrits.
pg-db-error = { $message } (SQLSTATE { $code })
pg-db-error-detail = {" "}; détail : { $detail }
pg-db-error-hint = {" "}; conseil : { $hint }
pg-db-error-where = {" "}; contexte : { $place }
pg-error-rootcert-read = lecture de sslrootcert { $path } : { $reason }
pg-error-rootcert-empty = sslrootcert { $path } ne contient aucun certificat PEM
pg-error-bundled-ca = l’autorité racine de Supabase fournie avec mailsync : { $reason }
error-tls-setup = préparation de TLS : { $reason }
smtp-url-invalid = n’est pas une URL valide : { $reason }
smtp-url-no-host = n’a pas d’hôte
smtp-url-scheme = doit commencer par smtp:// (STARTTLS) ou smtps:// (TLS implicite)
smtp-url-not-utf8 = a un nom d’utilisateur ou un mot de passe qui n’est pas de l’UTF-8 valide
smtp-url-password-no-user = a un mot de passe mais pas de nom d’utilisateur
smtp-error-no-url = { $name } n’est pas défini : indiquez le serveur SMTP qui remet les e-mails, p. ex. smtp://user:password@smtp.example.com:587 (STARTTLS) ou smtps://…:465
smtp-error-no-from = { $name } n’est pas défini : l’expéditeur de vos campagnes, p. ex. "Acme <news@acme.example>"
smtp-error-from-invalid = { $setting } n’est pas une adresse comme "Acme <news@acme.example>" : { $reason }
smtp-error-list-unsubscribe = { $setting } doit être une URL mailto: ou https://, p. ex. https://acme.example/unsubscribe?t={"{{"}unsubscribe_token{"}}"}
smtp-error-list-unsubscribe-email = { $setting } : une URL https:// ne peut pas contenir {"{{"}email{"}}"} (l’adresse finirait dans les journaux web, et n’importe qui pourrait désabonner n’importe qui) ; utilisez {"{{"}unsubscribe_token{"}}"}, p. ex. https://acme.example/unsubscribe?t={"{{"}unsubscribe_token{"}}"}
smtp-error-list-unsubscribe-no-secret = { $setting } utilise {"{{"}unsubscribe_token{"}}"} : définissez { $name } (un secret d’au moins 32 caractères) pour signer les jetons
smtp-error-tls = TLS pour le serveur SMTP { $server } : { $reason }
settings-error-ca-file-read = { $setting } : lecture de { $path } : { $reason }
settings-error-ca-file-empty = { $setting } : { $path } ne contient aucun certificat PEM
smtp-error-unusable = le serveur SMTP { $server } est inutilisable : { $reason }
smtp-hint-unusable = définissez { $name } (sur la pile locale : scripts/local-stack.sh up)
smtp-no-answer = pas de réponse en { $seconds } s
smtp-cannot-connect = connexion impossible à { $address } : { $reason }
smtp-no-starttls = le serveur ne propose pas STARTTLS, et mailsync n’envoie jamais d’e-mail ni de mot de passe en clair vers une autre machine (utilisez smtps:// pour le TLS implicite)
smtp-starttls-failed = échec de STARTTLS : { $reason }
smtp-login-refused = le serveur a refusé la connexion de { $user } : { $reason }

## l’API REST (src/supabase/rest.rs)

rest-the-access-token = le jeton d’accès
rest-error-header = { $name } contient des caractères interdits dans un en-tête HTTP
error-http-client = création du client HTTP : { $reason }
rest-error-unexpected-answer = { $what } : la réponse du serveur n’est pas celle qu’attend mailsync : { $reason }
rest-error-building = { $what } : préparation de la requête : { $reason }
rest-error-prefer = en-tête Prefer invalide
rest-error-not-retryable = { $what } : la requête ne peut pas être relancée
rest-cause-gateway = la passerelle a répondu { $status }
rest-cause-no-answer = pas de réponse à temps
rest-cause-timeout = la requête a expiré
rest-cause-connect = connexion impossible à { $project }
rest-error-retry-after = { $what } : l’API REST de { $project }/rest/v1 a répondu { $status } et demande d’attendre { $seconds } s avant de réessayer
rest-hint-retry-after = cette requête n’a rien changé ; relancez la commande passé ce délai
rest-error-maybe-applied = { $what } : { $cause } après l’envoi de la requête (API REST de { $project }/rest/v1) ; elle a pu être appliquée ou non, elle n’a donc pas été répétée
rest-hint-maybe-applied = vérifiez le résultat (p. ex. mailsync campaigns list) avant de relancer la commande
rest-error-transport = { $what } : { $cause } (API REST de { $project }/rest/v1)
rest-error-no-row = { $what } : le serveur n’a renvoyé aucune ligne
rest-not-found = introuvable
rest-error-value = { $what } : le serveur a refusé une valeur ({ $message })
rest-invalid-value = valeur invalide
error-quota = { $what } : { $quota ->
        [contacts] le quota de contacts est atteint : au plus { $limit } contacts par utilisateur, et il y en aurait { $count }
       *[other] le quota quotidien d'e-mails est atteint : au plus { $limit } e-mails mis en file par utilisateur et par jour (UTC), et il y en aurait { $count }
    } ; rien n'a été écrit
hint-quota = le propriétaire du projet fixe les quotas dans la table public.mailsync_quotas (voir docs/shared-project.md)
error-too-long = { $what } : une valeur est plus longue que ce que la base accepte ({ $constraint })
hint-limits = docs/shared-project.md donne les limites de chaque colonne
rest-error-status = { $what } : l’API REST a répondu { $status }

## ce qui était en cours, au début d’une erreur (« liste des contacts : … »)

doing-organisation-lookup = recherche de l’organisation
doing-finding-campaign = recherche de la campagne
doing-listing-templates = liste des modèles
doing-creating-template = création du modèle { $name }
doing-listing-contacts = liste des contacts
doing-unsuppressing = retrait d’adresses de la liste d’exclusion
doing-suppressing = ajout d’adresses à la liste d’exclusion
doing-reading-dashboard = lecture de dashboard_analytics
doing-reading-campaign-analytics = lecture de campaign_analytics
doing-importing-rows = import des lignes { $first } à { $last } de { $file }
doing-unknown-outcomes = recherche des e-mails à l’issue inconnue
doing-claiming = prise des e-mails à remettre
doing-counting-queued = décompte des e-mails en file
doing-reading-content = lecture de l’objet et du contenu de la campagne
doing-recording-outcomes = enregistrement des résultats de remise
doing-extending-leases = prolongation des baux des e-mails en cours d’envoi
doing-reading-template = lecture du modèle
doing-creating-campaign = création de la campagne
doing-reading-created-campaign = relecture de la campagne créée
doing-listing-campaigns = liste des campagnes
doing-reading-figures = lecture des chiffres de la campagne
doing-listing-recipients = liste des destinataires de la campagne
doing-reading-send = lecture de l’envoi de la campagne
doing-counting-recipients = décompte des destinataires
doing-queueing-campaign-named = mise en file de la campagne { $name }
doing-queueing-campaign = mise en file de la campagne

## commandes db (src/commands/db/)

# $verb vaut reset ou apply.
db-report = { $verb ->
        [reset] Schéma recréé dans
       *[other] Schéma appliqué à
    } { $target } : { $tables ->
        [one] { $tables } table
       *[other] { $tables } tables
    }, { $views ->
        [one] { $views } vue
       *[other] { $views } vues
    }, { $policies ->
        [one] { $policies } politique
       *[other] { $policies } politiques
    }, { $triggers ->
        [one] { $triggers } déclencheur
       *[other] { $triggers } déclencheurs
    } en { $ms } ms
db-error-not-ours = { $verb ->
        [reset] réinitialisation
       *[other] application
    } de { $target } refusée, rien n’a changé : { $reason }
db-error-not-earlier = { $verb ->
        [reset] réinitialisation
       *[other] application
    } de { $target } refusée, rien n’a changé : des politiques nommées <table>_select_own ne font pas de ces objets ceux d’un mailsync antérieur, et ils ne sont pas marqués comme ceux de mailsync : { $objects }
db-hint-not-ours = mailsync ne supprime ou ne remplace que ses propres objets (marqués « Managed by mailsync »). Renommez ou déplacez les vôtres, ou laissez mailsync en reprendre un avec --adopt NOM (reset le supprime alors avec ses lignes)
db-error-rolled-back = { $verb ->
        [reset] la réinitialisation
       *[other] l’application
    } de { $target } a échoué et a été annulée, rien n’a changé : { $reason }
# $kind vaut table, view ou function.
adopt-error-unknown = --adopt { $name } : mailsync n’utilise aucun objet de ce nom (il utilise : { $names })
adopt-error-failed = la reprise de { $name } a échoué, rien n’a changé : { $reason }
adopt-error-wrong-kind = --adopt { $name } : public.{ $name } n’est pas { $kind ->
        [table] une table
        [view] une vue
       *[other] une fonction
    }, mailsync ne peut donc pas le reprendre (rien n’a été changé)
adopt-hint-rename = renommez public.{ $name }
adopt-error-missing = --adopt { $name } : il n’y a pas de public.{ $name } à reprendre (rien n’a été changé)
adopt-done = { $kind ->
        [table] Table public.{ $entry } reprise
        [view] Vue public.{ $entry } reprise
       *[other] Fonction public.{ $entry } reprise
    } : elle appartient désormais à mailsync
verify-summary = { $checks ->
        [one] { $checks } vérification
       *[other] { $checks } vérifications
    }, { $passed ->
        [one] { $passed } réussie
       *[other] { $passed } réussies
    }, { $failed ->
        [one] { $failed } en échec
       *[other] { $failed } en échec
    }
verify-error-drift = la base ne correspond pas au schéma : { $count ->
        [one] { $count } vérification en échec
       *[other] { $count } vérifications en échec
    }
verify-hint-apply = lancez `mailsync db apply` pour la réparer
verify-notes = { $count ->
        [one] { $count } remarque sur les objets propres au projet (pas ceux de mailsync, donc non jugés) ; -v la détaille
       *[other] { $count } remarques sur les objets propres au projet (pas ceux de mailsync, donc non jugés) ; -v les détaille
    }
schema-cache-error-query = lecture des objets que l’API REST doit connaître : { $reason }
schema-cache-error-stale = le schéma est validé, mais l’API REST à { $url } ne le connaît toujours pas après { $seconds } s : { $missing }
schema-cache-hint-reload = l’API recharge son cache de schéma sur `notify pgrst, 'reload schema'` (à lancer dans l’éditeur SQL) ou à son redémarrage ; lancez la commande suivante une fois qu’elle répond
verify-error = vérification de { $target } : { $reason }
migration-up-to-date = { $file } contient déjà ce schéma (mailsync { $version }) ; rien n’a été écrit
migration-error-exists = { $file } : existe déjà ; mailsync n’écrase jamais une migration
migration-hint-exists = relancez la commande dans une seconde, ou supprimez le fichier s’il n’a jamais été appliqué
migration-written = { $file } écrit
migration-next = Appliquez-le avec `supabase db push` (projet hébergé) ou `supabase db reset` (local), puis vérifiez avec `mailsync db verify`.

## fichiers

file-error-create-folder = { $file } : impossible de créer le dossier : { $reason }
file-error-read = { $file } : lecture impossible : { $reason }
file-error-write = { $file } : écriture impossible : { $reason }
file-error-read-file = { $file } : impossible de lire le fichier : { $reason }
file-error-write-file = { $file } : impossible d’écrire le fichier : { $reason }

## import : fichiers, feuilles, limites (src/commands/import/)

file-not-found = fichier introuvable
file-permission-denied = permission refusée
hint-join = { $first } ; { $then }
import-error-batch-size = --batch-size doit être compris entre 1 et 50000
import-error-in-flight = --in-flight doit être compris entre 1 et 8
import-error-reading = lecture du fichier : { $reason }
import-error-no-rows = { $file } : la feuille { $sheet } n’a aucune ligne
import-error-file-type = { $file } : type de fichier non pris en charge ; mailsync lit les fichiers .xlsx, .xlsm, .xlsb, .xls, .ods, .csv et .tsv
import-error-directory = { $file } : c’est un dossier, pas un tableur
import-error-empty-file = { $file } : le fichier est vide
import-error-no-sheet = { $file } : le classeur n’a aucune feuille
import-error-sheet-not-found = { $file } : aucune feuille nommée { $sheet } ; les feuilles sont : { $sheets }
import-malformed-workbook = classeur mal formé
import-error-protected = { $file } : le classeur est protégé par un mot de passe ; enregistrez-en une copie non protégée et importez-la
import-error-corrupt = { $file } : classeur illisible (abîmé, tronqué, ou pas du format qu’annonce son nom) : { $detail }
import-error-unreadable = { $file } : classeur illisible : { $detail }
import-error-csv = { $file } : fichier CSV illisible vers la ligne { $line } : { $reason }
import-error-encoding = --encoding { $label } : encodage inconnu
import-hint-encodings = utilisez l’un de { $names }
import-error-undecodable = { $file } : la ligne { $row } n’est pas du texte { $encoding } valide ; rien n’a été importé
import-hint-encoding = enregistrez la feuille en « CSV UTF-8 », ou indiquez son encodage, p. ex. --encoding { $other }
import-line-undecodable = la ligne { $line } n’est pas du texte { $encoding } valide
import-error-rejects-is-input = --rejects { $rejects } est le fichier importé { $file } ; y écrire les rejets le remplacerait
import-hint-another-file = choisissez un autre fichier
import-error-rejects-write = { $file } : impossible d’écrire le fichier des rejets : { $reason }
import-hint-rerun-to-finish = les lignes avant la ligne { $row } sont importées ; relancez la même commande pour finir (rien n’est importé deux fois)
import-hint-rerun-when-up = rien n’a été importé ; relancez la même commande quand le serveur répondra
import-hint-fix-then-rerun = les lignes avant la ligne { $row } sont importées ; une fois le problème corrigé, importer de nouveau le fichier ajoute le reste (rien n’est importé deux fois)
import-hint-nothing-imported = rien n’a été importé
limit-error = { $file } : { $what } ; rien n’a été importé
limit-hint = si le fichier est authentique, relevez la limite avec { $flag } (ou { $env })
limit-entry-size = l’élément d’archive { $entry } se décompresse en plus de { $limit }, la limite pour un élément
limit-shared-strings = la table des chaînes partagées { $declared ->
        [yes] annonce
       *[other] contient
    } { $count } entrées, plus que la limite de { $limit }
limit-ods-cells = la feuille { $sheet } s’étend sur { $count } cellules ou plus (lignes et colonnes répétées comprises), plus que la limite de { $limit } cellules
limit-xls-cells = ses feuilles couvrent { $count } cellules ou plus, plus que la limite de { $limit } cellules
limit-xls-text = ses cellules répètent des chaînes partagées en plus de { $limit } de texte, la limite pour un élément
limit-ods-text = la feuille { $sheet } répète le texte de ses cellules en plus de { $limit }, la limite pour un élément
import-error-ole-damaged = { $file } : classeur illisible : son conteneur OLE est abîmé ({ $reason }) ; rien n’a été importé
ole-sector-past-end = le secteur { $sector } est au-delà de la fin du fichier
ole-sector-unreadable = lecture impossible du secteur { $sector } : { $reason }
ole-chain-loops = une chaîne de secteurs revient au secteur { $sector }
ole-sector-not-in-fat = le secteur { $sector } n’est pas dans la table d’allocation
ole-difat-loops = la chaîne DIFAT revient au secteur { $sector }
ole-difat-empty = la chaîne DIFAT est vide
ole-fat-twice = la table d’allocation nomme deux fois le secteur { $sector }
ole-no-root = le fichier n’a pas de répertoire racine
ole-no-mini-stream = un flux court mais pas de mini-flux
ole-mini-sector-past-end = le mini-secteur { $sector } est au-delà du mini-flux
limit-sheet-cells = la feuille { $sheet } a plus de { $limit } cellules, la limite pour une feuille
limit-cell-length = la cellule { $cell } de la feuille { $sheet } contient { $count } caractères, plus que la limite de { $limit }
size-bytes = { $count } octets
size-kib = Kio
size-mib = Mio
size-gib = Gio

## campagnes, contacts, modèles, compte, fichiers écrits

campaign-error-no-template = aucun modèle nommé { $name }
hint-templates-list = mailsync templates list montre les vôtres
campaign-error-subject = --subject est requis
report-error-not-xlsx = { $file } : un rapport est un classeur de deux feuilles
report-hint-xlsx = donnez un fichier .xlsx
send-in-organization = {" "}dans l’organisation { $organization }
send-error-no-recipients = la campagne { $name } n’a aucun destinataire{ $organization } : rien n’a été mis en file
send-hint-import-first = importez d’abord des contacts : mailsync import FICHIER
send-error-queued-before = { $count ->
        [one] { $count } e-mail de { $name } a été mis en file avant cela
       *[other] { $count } e-mails de { $name } ont été mis en file avant cela
    }
send-hint-continue = relancez le même mailsync campaigns send : il reprend là où il s’est arrêté
deliver-already-sent = la campagne est déjà envoyée : rien à remettre
deliver-error-not-recorded = { $count ->
        [one] { $count } résultat n’a pas pu être enregistré : cet e-mail a maintenant une issue inconnue
       *[other] { $count } résultats n’ont pas pu être enregistrés : ces e-mails ont maintenant une issue inconnue
    }
deliver-hint-not-recorded = la prochaine exécution de `mailsync campaigns deliver` les signale
deliver-error-unknown-remain = { $count ->
        [one] { $count } e-mail a une issue inconnue : le serveur SMTP l’a peut-être accepté, peut-être pas
       *[other] { $count } e-mails ont une issue inconnue : le serveur SMTP les a peut-être acceptés, peut-être pas
    }
deliver-hint-unknown-remain = quand les journaux du serveur SMTP le disent (cherchez leur Message-ID), réglez-les : mailsync campaigns deliver CAMPAGNE --settle-unknown sent (ou failed) ; ou renvoyez-les avec --resend-unknown
deliver-settled-unknown = { $count ->
        [one] { $count } e-mail d’issue inconnue réglé comme { $outcome }
       *[other] { $count } e-mails d’issue inconnue réglés comme { $outcome }
    }
deliver-error-settle-campaign = --settle-unknown demande la campagne : mailsync campaigns deliver CAMPAGNE --settle-unknown sent
deliver-journal-replayed = un processus arrêté sur cette machine ({ $worker }) a laissé un journal : { $recorded } résultat(s) enregistré(s), { $released } e-mail(s) jamais commencé(s) remis en attente, { $started } laissé(s) d’issue inconnue (le serveur SMTP les avait)
deliver-journal-bad-lines = { $count } ligne(s) du journal { $path } illisible(s), ignorée(s)
deliver-error-interrupted = interrompu : les e-mails en cours d’envoi ont été terminés et enregistrés ; les autres attendent de nouveau
deliver-error-rate = --rate doit être un nombre d’e-mails par seconde, 0 pour aucune limite
deliver-error-concurrency = --concurrency doit être compris entre 1 et 64
deliver-error-attempts = --attempts doit être compris entre 1 et 10
deliver-error-lease = --lease doit valoir au moins 10 secondes
deliver-error-retry-delay = --retry-delay doit être un nombre de secondes
deliver-error-verp-plus = --verp écrit l’identifiant de chaque e-mail après un « + » dans la partie locale de l’adresse de retour, et { $address } contient déjà un « + »
deliver-error-verp-too-long = --verp écrit l’identifiant de chaque e-mail (36 caractères) après un « + » dans la partie locale de l’adresse de retour, et { $address } dépasserait alors les 64 caractères permis pour une partie locale
deliver-hint-verp = donnez à { $name } une adresse simple, par exemple bounces@votre-domaine.example
deliver-note-no-dsn = le serveur SMTP { $server } ne propose pas les rapports de remise (DSN) : les rebonds reviennent toujours à { $return_path }, mais aucun rapport ne dira qu’un e-mail a été remis
deliver-error-no-id = recherche de la campagne : la réponse du serveur n’a pas d’id
deliver-error-not-queued = la campagne { $name } est { $status } : rien n’est encore en file
deliver-hint-send-first = mettez-la d’abord en file : mailsync campaigns send { $id }
# $resend vaut yes avec --resend-unknown.
deliver-unknown = { $count ->
        [one] { $count } e-mail a une issue inconnue
       *[other] { $count } e-mails ont une issue inconnue
    } : un processus d’envoi s’est arrêté entre leur prise et l’enregistrement du résultat, le serveur SMTP les a donc peut-être acceptés, peut-être pas ; { $resend ->
        [yes] ils sont renvoyés maintenant (--resend-unknown)
       *[other] ils sont laissés tels quels : renvoyez-les avec --resend-unknown quand vous saurez qu’ils ne sont pas partis
    }.
deliver-unknown-email = {"  "}{ $email }  Message-ID { $message_id }  pris le { $claimed_at } par { $owner }
deliver-unknown-more = {"  "}… et { $count } de plus
deliver-stopping = arrêt : les e-mails en cours d’envoi sont terminés et enregistrés (Ctrl-C de nouveau pour quitter tout de suite)
deliver-error-smtp-down = le serveur SMTP { $server } a échoué { $count } fois de suite (dernière réponse : { $reply }) ; arrêt : les e-mails pas encore acceptés attendent de nouveau
watch-note-realtime-refused = watch : { $reason } ; { $polling }, nouvel essai de Realtime plus tard
realtime-at = Realtime sur { $project }/realtime/v1
realtime-no-answer = pas de réponse
realtime-error-key = { $place } : la clé d’API a été refusée ({ $reason })
realtime-hint-key = vérifiez SUPABASE_ANON_KEY : ce doit être la clé anon (publishable) du projet
realtime-closed-before-join = fermé avant l’abonnement
realtime-no-join-reply = pas de réponse à l’abonnement
realtime-join-refused = abonnement refusé
realtime-connection-lost = connexion perdue
realtime-heartbeat = battement de cœur sans réponse
realtime-closed-by-server = fermé par le serveur
realtime-subscription-failed = l’abonnement a échoué
realtime-channel-closed-because = Realtime a fermé le canal : { $reason }
realtime-channel-closed = le canal a été fermé par le serveur
realtime-http = le serveur a répondu HTTP { $status }
realtime-connection-closed = connexion fermée
realtime-tls = erreur TLS
realtime-url = URL Realtime invalide
unsubscribe-error-not-email = { $email } n’est pas une adresse e-mail (rien n’a été changé)
unsubscribe-error-none = donnez au moins une adresse e-mail
unsubscribe-error-token = ce jeton de désabonnement n’est pas valide (contrefait, modifié, signé avec un autre secret, ou pour un e-mail qui n’est pas le vôtre) ; rien n’a été modifié
settings-error-no-unsubscribe-secret = { $name } n’est pas défini : il faut le secret qui a signé les jetons de désabonnement pour les vérifier
settings-error-unsubscribe-secret-short = { $setting } est trop court : un secret de désabonnement a au moins { $min } caractères
export-error-json-stdout = --json et `-` veulent tous deux la sortie standard : exportez dans un fichier pour avoir le bilan JSON
export-error-no-organisation = aucune organisation nommée { $name } ; rien n’a été écrit
import-error-column-spec = une colonne est une lettre (B) ou un nom d’en-tête (Email)
# $what vaut organisation ou email ; $headers liste la première ligne, ou vaut none.
import-error-no-column-headed = { $file } : aucune colonne { $what ->
        [email] d’e-mails
       *[other] d’organisations
    } intitulée { $name } dans la première ligne{ $headers ->
        [none] {""}
       *[other] {" "}(ses en-têtes : { $headers })
    }
login-error-password-empty = mot de passe vide
login-done = Connecté à { $project } en tant que { $email } ({ $user })
login-session-saved = Session enregistrée dans { $file }
logout-not-signed-in = Pas de session ouverte sur { $project } ; rien à faire
logout-not-revoked = impossible de révoquer la session sur { $auth } (injoignable ou déjà expirée) ; la session locale est supprimée quand même
logout-done = Déconnecté de { $project } ; { $file } supprimé
whoami-user = utilisateur
whoami-email = e-mail
whoami-role = rôle
whoami-project = projet
whoami-token-expires = expiration du jeton
whoami-token-from = origine du jeton
whoami-expired = expiré
whoami-expires-in = dans { $minutes } min (unix { $at })
whoami-unknown = inconnue
auth-no-detail = sans détail
auth-no-answer = pas de réponse
auth-cannot-connect = connexion impossible
auth-error-unreachable = Supabase Auth sur { $auth } : { $why }
auth-hint-check-url = vérifiez SUPABASE_URL
auth-error-not-understood = Supabase Auth sur { $auth } a répondu quelque chose que mailsync ne comprend pas
auth-error-not-confirmed = cette adresse e-mail n’est pas encore confirmée
auth-hint-not-confirmed = ouvrez le lien que Supabase lui a envoyé, puis relancez `mailsync login`
auth-error-wrong-password = e-mail ou mot de passe incorrect
auth-error-no-auth-server = { $project } n’a pas de serveur Auth (la pile locale n’en a pas) : `mailsync login` ne peut pas s’y connecter
auth-hint-token = agissez en tant qu’utilisateur avec un jeton : export MAILSYNC_ACCESS_TOKEN="$(scripts/local-stack.sh token <uuid>)"
auth-error-sign-in-refused = Supabase Auth sur { $auth } a refusé la connexion (HTTP { $status }, { $code }) : { $text }
auth-error-session-expired = votre session a expiré
hint-run-login = lancez `mailsync login`
hint-run-login-again = relancez `mailsync login`
auth-error-refresh-refused = Supabase Auth sur { $auth } a refusé de renouveler la session (HTTP { $status }, { $code }) : { $text }
auth-hint-session-kept = la session enregistrée est conservée ; relancez la commande quand Supabase Auth répondra
auth-error-rate-limited = Supabase Auth sur { $auth } limite les requêtes (HTTP 429)
auth-error-failed = Supabase Auth sur { $auth } a échoué (HTTP { $status })
auth-hint-wait = rien n’a été changé ; attendez une minute et réessayez
session-error-no-dir = pas de dossier de configuration
session-hint-no-dir = définissez HOME ou { $name }
session-error-read = { $file } : impossible de lire la session enregistrée : { $reason }
session-error-damaged = { $file } : la session enregistrée est abîmée
session-error-save = { $file } : impossible d’enregistrer la session : { $reason }
session-error-delete = { $file } : impossible de supprimer la session : { $reason }
man-error-write = { $dir } : impossible d’écrire les pages de manuel : { $reason }
man-done = { $count ->
        [one] { $count } page de manuel écrite
       *[other] { $count } pages de manuel écrites
    } dans { $dir } ; pour en lire une : man { $dir }/mailsync.1
sheet-error-file-type = { $file } : mailsync écrit des fichiers .xlsx ou .csv (ou `-` pour du CSV sur la sortie standard)
sheet-error-csv-one-sheet = { $file } : un fichier CSV ne contient qu’une feuille ; écrivez un fichier .xlsx
sheet-error-writing = écriture de { $file } : { $reason }
sheet-error-too-many-rows = { $file } : plus de 1 048 576 lignes, le maximum d’une feuille de calcul
sheet-hint-csv = exportez en .csv
sheet-error-stdout = un classeur ne peut pas être écrit sur la sortie standard
content-error-read = { $file } : impossible de lire le contenu : { $reason }
prompt-error-password = lecture du mot de passe : { $reason }
json-error-encoding = encodage de la sortie JSON : { $reason }
bounces-scan-message = { $source } : { $kind } ({ $format })
bounces-scan-recipient = {"  "}{ $address } : { $action } { $status } { $diagnostic }
bounces-scan-recipient-bare = {"  "}{ $address } : { $action } { $status }
bounces-scan-problem = {"  "}lu en partie seulement : { $problem }
bounces-scan-summary = { $messages ->
    [one] 1 message
   *[other] { $messages } messages
  } : { $reports } rapports de remise, { $complaints } plaintes, { $others } autres messages
bounces-scan-error-read = { $path } : lecture impossible : { $reason }
bounces-scan-hint-paths = donnez des fichiers .eml, des dossiers Maildir, des fichiers mbox ou des dossiers qui en contiennent
bounces-kind-delivery-status = rapport de remise
bounces-kind-complaint = plainte
bounces-kind-not-a-report = pas un rapport
bounces-action-failed = échec
bounces-action-delayed = retardé
bounces-action-delivered = remis
bounces-action-relayed = relayé
bounces-action-expanded = développé
bounces-action-complained = plainte


## La boîte des retours (IMAP)
mailbox-error-unreachable = impossible de joindre la boîte des retours { $address } : { $cause }
mailbox-error-lost = la connexion à la boîte des retours { $address } a échoué : { $cause }
mailbox-hint-rerun = ce qui a été enregistré le reste ; relancez la commande pour continuer
mailbox-hint-check-url = vérifiez l'hôte et le port dans { $name } (mailsync config l'affiche) ; rien n'a été lu ni enregistré
mailbox-error-login = la boîte des retours { $address } a refusé la connexion de { $user }
mailbox-hint-login = vérifiez l'utilisateur et le mot de passe dans { $name } ; rien n'a été lu ni enregistré
mailbox-error-folder = la boîte des retours { $address } n'a pas de dossier { $folder } (ou a refusé de l'ouvrir)
mailbox-error-tls = TLS avec la boîte des retours { $address } a échoué : { $reason }
mailbox-hint-tls = le serveur doit présenter un certificat valide pour son nom ; rien ne lui a été envoyé
mailbox-cause-timeout = pas de réponse à temps
mailbox-cause-closed = le serveur a fermé la connexion
mailbox-cause-bad-name = l'hôte n'est pas un nom valide pour un certificat

## bounces fetch
fetch-error-interval = --interval doit valoir au moins 1 seconde
fetch-error-interrupted = interrompu : les messages déjà lus sont enregistrés ; relancez la commande pour continuer
fetch-retrying = { $reason } ; nouvel essai
fetch-no-keywords = la boîte ne garde pas les mots-clés : les messages enregistrés ne peuvent pas être marqués, chaque passage relit donc tous les messages (chaque rapport ne compte qu'une fois)
fetch-what-record = enregistrement des rapports de remise
fetch-too-large = { $size } Mo, seuls les { $read } premiers Mo lus ;
fetch-line-not-report = UID { $uid } : { $size }pas un rapport, laissé dans la boîte
fetch-line-no-recipient = UID { $uid } : { $size }un rapport sans destinataire lisible, laissé dans la boîte ({ $problem })
fetch-line-report = UID { $uid } : { $size }{ $kind } : { $recipients }
fetch-kind-delivery = rapport de remise
fetch-kind-complaint = plainte
fetch-recipient = { $address } { $action }{ $status } → { $outcome }
fetch-outcome-recorded = enregistré
fetch-outcome-duplicate = déjà enregistré
fetch-outcome-unmatched = ne correspond à aucun de vos e-mails, laissé dans la boîte
fetch-outcome-invalid = refusé par la base, laissé dans la boîte
fetch-outcome-dry-run = serait enregistré (essai)
fetch-done = { $mailbox } : { $messages } message(s) lu(s) ; { $recorded } rapport(s) enregistré(s), { $duplicates } déjà enregistré(s), { $unmatched } non enregistré(s), { $not_reports } qui ne sont pas des rapports
fetch-dry-run-done = Essai, rien d'enregistré ni de marqué : { $mailbox } : { $messages } message(s) lu(s), { $reports } rapport(s), { $not_reports } qui ne sont pas des rapports
fetch-progress = Lecture des rapports
fetch-stopping = arrêt : les messages en main sont terminés et enregistrés (Ctrl-C de nouveau pour quitter tout de suite)

## Les fichiers de la pile locale, trouvés mais pas crus (affichés avec -v)
local-stack-ignored-above = { $path } ignoré : il est au-dessus de { $boundary }, où s’arrête la recherche de la pile locale (indiquez-le dans MAILSYNC_STACK_DIR pour l’utiliser)
local-stack-ignored-not-file = { $path } ignoré : ce n’est pas un fichier ordinaire
local-stack-ignored-owner = { $path } ignoré : il appartient à un autre utilisateur
local-stack-ignored-writable = { $path } ignoré : d’autres utilisateurs peuvent l’écrire
local-stack-ignored-remote = { $path } ignoré : son { $name } n’est pas sur cette machine
