"""The Discord layer's own parts: the client subclass (`client`), the sink that shows jobs in
Discord (`sink`), embeds and wording (`render`, `budgets`, `audit`, `markup`), private notices
(`notices`), the buttons as shown (`buttons`), the catalog's menus (`menus`), a request's way from
an interaction to a job (`requests`), the access gate (`access`), the admin checks (`checks`),
the capped attachment reader (`attachments`), the member's language (`i18n`, `translator`,
`locales/`) and what the parts need of the running bot (`host`). It depends on the core (`bot`);
the core never imports it, and it never imports the commands, which live beside it in `cogs/`,
one Cog per feature."""
