package app

import (
	"context"
	"flag"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/domain"
)

// dnsRecord is one record an operator publishes.
type dnsRecord struct {
	Name  string `json:"dns_name"`
	Type  string `json:"dns_type"`
	Value string `json:"dns_value"`
	Why   string `json:"purpose"`
}

// defineTenantInbound sets a tenant's return-path domain and reply routing
// and prints the DNS records they need, as tenant dkim prints its TXT record.
func defineTenantInbound(fs *flag.FlagSet) commandBody {
	sub := fs.String("subscription", "", "the tenant's subscription_id (required)")
	var returnPath *string
	fs.Func("return-path-domain", "the tenant's own return-path domain, e.g. bounces.tenant.example (\"\" for the gateway's bounce domain)", func(v string) error {
		returnPath = &v
		return nil
	})
	var replies *bool
	fs.Func("replies", "on or off: route replies to the sender account's inbox with a Reply-To", func(v string) error {
		on, err := strconv.ParseBool(strings.NewReplacer("on", "true", "off", "false").Replace(v))
		if err != nil {
			return err
		}
		replies = &on
		return nil
	})
	return func(ctx context.Context, inv invocation) error {
		tenant, err := subscriptionFlag(*sub)
		if err != nil {
			return err
		}
		if returnPath != nil && *returnPath != "" {
			d, err := domain.NormalizeDomain("return-path-domain", asciiDomain(*returnPath))
			if err != nil {
				return badUsage("--return-path-domain must be a fully qualified domain name, got %q", *returnPath)
			}
			returnPath = &d
		}
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		return withStore(ctx, cfg, func(s *postgres.Store) error {
			settings, err := s.SetInboundSettings(ctx, tenant, returnPath, replies)
			if err != nil {
				return err
			}
			return writeJSON(inv.env.Stdout, map[string]any{
				"subscription_id":    tenant,
				"return_path_domain": settings.ReturnPathDomain,
				"reply_routing":      settings.ReplyRouting,
				"bounce_domain":      cfg.Inbound.BounceDomain,
				"reply_domain":       cfg.Inbound.ReplyDomain,
				"dns":                inboundDNSRecords(cfg.Inbound, settings),
			})
		})
	}
}

// inboundDNSRecords are the records that bring a tenant's bounces back: its
// return-path domain is an alias of the bounce domain, so it inherits the
// bounce domain's MX (mail reaches the listener) and SPF (the relay may send
// as it), and SPF then aligns with the tenant's From domain for DMARC.
func inboundDNSRecords(c InboundConfig, s postgres.InboundSettings) []dnsRecord {
	records := []dnsRecord{}
	if s.ReturnPathDomain != "" && c.BounceDomain != "" {
		records = append(records, dnsRecord{Name: s.ReturnPathDomain, Type: "CNAME", Value: c.BounceDomain + ".",
			Why: "the tenant's return path: bounces reach the inbound listener and SPF aligns with the tenant's From domain"})
	}
	if s.ReplyRouting && c.ReplyDomain != "" {
		records = append(records, dnsRecord{Name: c.ReplyDomain, Type: "MX", Value: "10 " + c.Hostname + ".",
			Why: "replies reach the inbound listener (once for the gateway, shared by every tenant)"})
	}
	return records
}
