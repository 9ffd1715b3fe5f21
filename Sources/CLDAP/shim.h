#ifndef DIRBRIDGE_CLDAP_SHIM_H
#define DIRBRIDGE_CLDAP_SHIM_H
// The only place OpenLDAP's C headers enter dirbridge.
#define LDAP_DEPRECATED 0
#include <lber.h>
#include <ldap.h>

// Macros Swift cannot import as typed constants.
static inline void * _Nullable cldap_opt_on(void) { return LDAP_OPT_ON; }
static inline void * _Nullable cldap_opt_off(void) { return LDAP_OPT_OFF; }
// liblber's read-ahead I/O layer (a mutable global, which Swift 6 will not reference).
static inline Sockbuf_IO * _Nonnull cldap_readahead_io(void) { return &ber_sockbuf_io_readahead; }
static const int cldap_res_search_entry = LDAP_RES_SEARCH_ENTRY;
static const int cldap_res_search_reference = LDAP_RES_SEARCH_REFERENCE;
static const int cldap_res_search_result = LDAP_RES_SEARCH_RESULT;
static const int cldap_res_intermediate = LDAP_RES_INTERMEDIATE;
static const int cldap_res_bind = LDAP_RES_BIND;
static const int cldap_res_extended = LDAP_RES_EXTENDED;
#endif
