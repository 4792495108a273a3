print("pag")
