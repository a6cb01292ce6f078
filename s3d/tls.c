/*
 * tls.c - native TLS for the S3 listener: the certificate chain and private
 * key (PEM files) loaded with GnuTLS and handed to libmicrohttpd through its
 * certificate-retrieve callback (MHD_OPTION_HTTPS_CERT_CALLBACK), so a
 * reload (SIGHUP in `seglake serve`) swaps the credentials for new
 * handshakes without touching the listening socket or open connections.
 * A reload that fails (unreadable file, bad PEM, key not matching the
 * certificate) keeps the current credentials and says why.
 *
 * Sets replaced by a reload are kept until s3d_tls_free: a handshake that
 * already picked them may still be using them, and reloads are rare.
 * Not here: HTTP (server.c), the signal itself (cli/serve.c).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "s3d/s3d_int.h"

#define S3D_TLS_MAX_CHAIN 16

typedef struct s3d_tls_set {
	gnutls_pcert_st pcert[S3D_TLS_MAX_CHAIN];
	unsigned npcert;
	gnutls_privkey_t key;
	struct s3d_tls_set *older; /* replaced sets, freed with the s3d_tls */
} s3d_tls_set;

struct s3d_tls {
	char *cert_path, *key_path;
	pthread_mutex_t lock; /* protects cur */
	s3d_tls_set *cur;
};

static void s3d_tls_set_free(s3d_tls_set *set)
{
	while (set) {
		s3d_tls_set *next = set->older;
		for (unsigned i = 0; i < set->npcert; i++)
			gnutls_pcert_deinit(&set->pcert[i]);
		if (set->key)
			gnutls_privkey_deinit(set->key);
		free(set);
		set = next;
	}
}

/* Loads and checks a certificate chain + key pair. */
static int s3d_tls_load(const char *cert_path, const char *key_path, s3d_tls_set **out, sl_err *err)
{
	*out = NULL;
	gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 }, pa = { NULL, 0 }, pb = { NULL, 0 };
	gnutls_pubkey_t kpub = NULL;
	s3d_tls_set *set = NULL;
	int rc = 0, g;
	if ((g = gnutls_load_file(cert_path, &cert)) < 0) {
		rc = sl_err_set(err, SL_EIO, "cannot read TLS certificate %s: %s", cert_path,
				gnutls_strerror(g));
		goto out;
	}
	if ((g = gnutls_load_file(key_path, &key)) < 0) {
		rc = sl_err_set(err, SL_EIO, "cannot read TLS key %s: %s", key_path,
				gnutls_strerror(g));
		goto out;
	}
	set = calloc(1, sizeof(*set));
	if (!set) {
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		goto out;
	}
	unsigned n = S3D_TLS_MAX_CHAIN;
	if ((g = gnutls_pcert_list_import_x509_raw(set->pcert, &n, &cert, GNUTLS_X509_FMT_PEM, 0)) <
		    0 ||
	    n == 0) {
		rc = sl_err_set(err, SL_EINVAL, "TLS certificate %s: %s", cert_path,
				g < 0 ? gnutls_strerror(g) : "no certificate");
		goto out;
	}
	set->npcert = n;
	if (gnutls_privkey_init(&set->key) < 0) {
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		goto out;
	}
	if ((g = gnutls_privkey_import_x509_raw(set->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) <
	    0) {
		rc = sl_err_set(err, SL_EINVAL, "TLS key %s: %s", key_path, gnutls_strerror(g));
		goto out;
	}
	/* the key must belong to the first certificate: compare public keys
	 * (gnutls_certificate_set_x509_key_mem2 would check too, but leaks
	 * memory on that error path in this GnuTLS) */
	if (gnutls_pubkey_init(&kpub) < 0 ||
	    gnutls_pubkey_import_privkey(kpub, set->key, 0, 0) < 0 ||
	    gnutls_pubkey_export2(kpub, GNUTLS_X509_FMT_DER, &pa) < 0 ||
	    gnutls_pubkey_export2(set->pcert[0].pubkey, GNUTLS_X509_FMT_DER, &pb) < 0) {
		rc = sl_err_set(err, SL_EINVAL, "TLS certificate %s / key %s: cannot compare keys",
				cert_path, key_path);
		goto out;
	}
	if (pa.size != pb.size || memcmp(pa.data, pb.data, pa.size) != 0) {
		rc = sl_err_set(err, SL_EINVAL, "TLS certificate %s and key %s do not match",
				cert_path, key_path);
		goto out;
	}
	*out = set;
	set = NULL;
out:
	s3d_tls_set_free(set);
	if (kpub)
		gnutls_pubkey_deinit(kpub);
	gnutls_free(pa.data);
	gnutls_free(pb.data);
	if (key.data) {
		memset(key.data, 0, key.size);
		gnutls_free(key.data);
	}
	gnutls_free(cert.data);
	return rc;
}

int s3d_tls_new(const char *cert_path, const char *key_path, s3d_tls **out, sl_err *err)
{
	*out = NULL;
	if (!cert_path || !*cert_path || !key_path || !*key_path)
		return sl_err_set(err, SL_EINVAL, "--tls-cert and --tls-key go together");
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return sl_err_set(err, SL_ENOTSUP,
				  "this libmicrohttpd is built without TLS support");
	s3d_tls *t = calloc(1, sizeof(*t));
	if (!t)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	pthread_mutex_init(&t->lock, NULL);
	t->cert_path = strdup(cert_path);
	t->key_path = strdup(key_path);
	if (!t->cert_path || !t->key_path) {
		s3d_tls_free(t);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	int rc = s3d_tls_load(t->cert_path, t->key_path, &t->cur, err);
	if (rc != 0) {
		s3d_tls_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int s3d_tls_reload(s3d_tls *t, sl_err *err)
{
	s3d_tls_set *set;
	int rc = s3d_tls_load(t->cert_path, t->key_path, &set, err);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&t->lock);
	set->older = t->cur;
	t->cur = set;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void s3d_tls_free(s3d_tls *t)
{
	if (!t)
		return;
	s3d_tls_set_free(t->cur);
	pthread_mutex_destroy(&t->lock);
	free(t->cert_path);
	free(t->key_path);
	free(t);
}

/* gnutls_certificate_retrieve_function2, called by GnuTLS during each
 * handshake. libmicrohttpd makes the session's pointer its connection,
 * whose socket context server.c sets to the s3d. The returned structures
 * stay owned by the s3d_tls (GnuTLS does not free them). */
static int s3d_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
			    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
			    gnutls_pcert_st **pcert, unsigned int *pcert_length,
			    gnutls_privkey_t *privkey)
{
	(void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
	struct MHD_Connection *conn = gnutls_session_get_ptr(session);
	const union MHD_ConnectionInfo *ci =
		conn ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
	s3d *s = ci ? ci->socket_context : NULL;
	if (!s || !s->tls)
		return -1;
	pthread_mutex_lock(&s->tls->lock);
	s3d_tls_set *set = s->tls->cur;
	pthread_mutex_unlock(&s->tls->lock);
	*pcert = set->pcert;
	*pcert_length = set->npcert;
	*privkey = set->key;
	return 0;
}

void *s3d_tls_callback(void)
{
	return (void *)s3d_tls_retrieve;
}
