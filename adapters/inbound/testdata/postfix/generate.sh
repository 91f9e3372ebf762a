#!/bin/sh
# Regenerates the Postfix-made DSN fixtures in this directory by running
# Debian's Postfix (apt-get install postfix) as a private instance: its own
# config, queue and mail directories under a temporary directory, listening
# on loopback high ports only (never port 25), stopped at the end. Run as
# root (Postfix's master needs it):
#   sh adapters/inbound/testdata/postfix/generate.sh
# It submits over SMTP from the VERP sender bounce+fixturetoken@bounces.gw.example:
#   unknown.eml   one message to an unknown local user        (Action: failed, 5.1.1)
#   multi.eml     one message to two unknown users            (two failed recipient blocks)
#   full.eml      one message to a mailbox over its size limit (Action: failed, 5.2.2)
#   delayed.eml   one message to a relay that never answers   (Action: delayed, 4.4.1)
#   delivered.eml one message asking NOTIFY=SUCCESS           (Action: delivered)
# Postfix mails each notification to the sender; a catch-all virtual mailbox
# for bounces.gw.example keeps it, and the script copies it here.
set -eu
OUT=$(cd "$(dirname "$0")" && pwd)
SMTP_PORT=${SMTP_PORT:-10025}
DEAD_PORT=${DEAD_PORT:-10099}
W=$(mktemp -d /tmp/mailgate-postfix.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/etc" "$W/vmail/captured/new" "$W/vmail/captured/cur" "$W/vmail/captured/tmp" "$W/vmail/full" "$W/vmail/notify"
UID_=$(id -u postfix); GID_=$(id -g postfix)
# A mailbox (mbox) already at its size limit.
head -c 19800 /dev/zero | tr '\0' 'x' > "$W/vmail/full/mbox"
chown -R postfix:postfix "$W/vmail"
cp /etc/postfix/master.cf "$W/etc/master.cf"
# Everything unchrooted, and smtpd on loopback at a high port only.
awk -v port="$SMTP_PORT" '
	/^smtp[ \t]+inet/ { print "127.0.0.1:" port " inet n - n - - smtpd"; next }
	/^[a-z]/ && NF >= 8 { $5 = "n" }
	{ print }' /etc/postfix/master.cf > "$W/etc/master.cf"
cat > "$W/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $W/spool
data_directory = $W/data
mail_owner = postfix
myhostname = mta.fixture.test
mydomain = fixture.test
myorigin = fixture.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination = local.test
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = /tmp
maillog_file = $W/maillog
virtual_mailbox_domains = bounces.gw.example, virt.test
virtual_mailbox_base = $W/vmail
virtual_mailbox_maps = inline:{ {@bounces.gw.example=captured/} {full@virt.test=full/mbox} {notify@virt.test=notify/mbox} }
virtual_uid_maps = static:$UID_
virtual_gid_maps = static:$GID_
virtual_mailbox_limit = 20000
message_size_limit = 20000
mailbox_size_limit = 20000
transport_maps = inline:{ {slow.test=smtp:[127.0.0.1]:$DEAD_PORT} }
smtp_connect_timeout = 1s
delay_warning_time = 1s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtputf8_enable = no
CF
mkdir -p "$W/spool" "$W/data" && chown postfix "$W/data"
postfix -c "$W/etc" set-permissions create-missing >/dev/null 2>&1 || true
postfix -c "$W/etc" check
postfix -c "$W/etc" start
trap 'postfix -c "$W/etc" stop >/dev/null 2>&1 || true; rm -rf "$W"' EXIT

python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys, time
port = int(sys.argv[1])
sender = "bounce+fixturetoken@bounces.gw.example"
def send(name, rcpts, notify=None):
    body = ("From: Sender <sender@tenant.example>\r\nTo: %s\r\nSubject: fixture %s\r\n"
            "Message-ID: <fixture-%s@tenant.example>\r\n\r\nfixture message %s\r\n") % (", ".join(rcpts), name, name, name)
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.ehlo("client.fixture.test")
        opts = ["NOTIFY=" + notify] if notify else []
        s.sendmail(sender, rcpts, body, rcpt_options=opts)
send("unknown", ["nosuchuser@local.test"])
time.sleep(0.5)
send("multi", ["nobody1@local.test", "nobody2@local.test"])
time.sleep(0.5)
send("full", ["full@virt.test"])
time.sleep(0.5)
send("delayed", ["someone@slow.test"])
time.sleep(0.5)
send("delivered", ["notify@virt.test"], notify="SUCCESS")
PY
# Wait for the notifications (the delay warning takes a few queue runs).
want=5
for i in $(seq 1 120); do
	n=$(ls "$W/vmail/captured/new" | wc -l)
	[ "$n" -ge "$want" ] && break
	sleep 1
done
for f in "$W"/vmail/captured/new/*; do
	subject=$(grep -m1 -i '^Subject:' "$f" || true)
	body=$(cat "$f")
	case "$body" in
	*"fixture multi"*) name=multi ;;
	*"fixture unknown"*) name=unknown ;;
	*"fixture full"*) name=full ;;
	*"fixture delayed"*) name=delayed ;;
	*"fixture delivered"*) name=delivered ;;
	*) name=other-$(basename "$f") ;;
	esac
	# Strip what the capturing mailbox added, so the fixture is what the MTA sent.
	sed -e '/^Delivered-To:/d' "$f" > "$OUT/$name.eml"
	echo "wrote $name.eml ($subject)"
done
