// Package templates embeds the example stack templates and each provider's
// bootstrap templates.
package templates
