// Plugin authors get the C types of plugin.h (pag_host, pag_status, ...) from `import PAGPluginKit`,
// which they need for the one-line `pag_plugin_init` entry point.
@_exported import CPAGPlugin
