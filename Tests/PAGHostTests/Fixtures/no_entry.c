/* A shared library that is not a pag plugin: it has no pag_plugin_init. */
int some_function(int x) { return x + 1; }
